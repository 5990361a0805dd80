package deploy

import (
	"bytes"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// rewrite replaces old with new in text, failing when old is not there:
// the files under test changed and the test must follow.
func rewrite(t *testing.T, file, text, old, new string) string {
	t.Helper()
	if !strings.Contains(text, old) {
		t.Fatalf("%s no longer holds %q: update this test", file, old)
	}
	return strings.ReplaceAll(text, old, new)
}

// lockedBuffer collects a process's output while it runs.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// The cluster of compose.cluster.yaml, run here as processes: Redis, three
// nodes on the shipped binary with inboxmq.cluster.yaml, and HAProxy with
// haproxy.cfg. Only addresses change: loopback ports instead of container
// names, and HAProxy connects from 127.0.0.3 (the nodes trust that address
// for PROXY headers, as they trust 172.30.0.10 in compose) while the
// clients connect from 127.0.0.1. A node that logs a client at 127.0.0.1
// took its address from HAProxy's PROXY protocol v2 header.
func TestComposeClusterThroughHAProxy(t *testing.T) {
	haproxy, err := exec.LookPath("haproxy")
	if err != nil {
		if haproxy, err = exec.LookPath("/usr/sbin/haproxy"); err != nil {
			t.Fatal("haproxy not found: `make deps` installs it (Debian package haproxy)")
		}
	}
	redis := redistest.Start(t, redistest.Config{})

	const nodeCfgFile, lbCfgFile = "inboxmq.cluster.yaml", "haproxy.cfg"
	nodeCfg := readFile(t, composeDir(t)+"/"+nodeCfgFile)
	nodeCfg = rewrite(t, nodeCfgFile, nodeCfg, `addresses: ["redis:6379"]`, fmt.Sprintf("addresses: [%q]", redis.Addr))
	nodeCfg = rewrite(t, nodeCfgFile, nodeCfg, `"172.30.0.10"`, `"127.0.0.3"`)
	nodeCfg = rewrite(t, nodeCfgFile, nodeCfg, "format: json", "format: text") // the harness reads text lines
	nodeCfg = rewrite(t, nodeCfgFile, nodeCfg, "\nlisteners:\n", "\nlisteners:\n"+
		"  mqtt: {address: \"127.0.0.1:0\"}\n  websocket: {address: \"127.0.0.1:0\"}\n"+
		"  http: {address: \"127.0.0.1:0\"}\n  admin: {address: \"127.0.0.1:0\"}\n")
	cfgPath := writeTemp(t, "cluster.yaml", nodeCfg)

	ports := defaultPorts(t)
	lbCfg := readFile(t, composeDir(t)+"/"+lbCfgFile)
	lbCfg = rewrite(t, lbCfgFile, lbCfg, "\ndefaults\n", "\ndefaults\n    source 127.0.0.3\n")
	// HAProxy wants 2 file descriptors per connection and refuses to start
	// when it cannot have them; this machine allows 20000, the container
	// 1048576.
	lbCfg = rewrite(t, lbCfgFile, lbCfg, "maxconn 200000", "maxconn 4000")
	lbCfg = rewrite(t, lbCfgFile, lbCfg, fmt.Sprintf(" check port %d ", ports["http"]), " check ")
	t.Setenv(broker.SecretEnv, mqtttest.Secret)
	var nodes []*mqtttest.Process
	for i := range 3 {
		t.Setenv(broker.NodeIDEnv, fmt.Sprint(i)) // read by the process as it starts
		p := mqtttest.StartBinary(t, mqtttest.ShippedBinary(t), cfgPath)
		nodes = append(nodes, p)
		name := fmt.Sprintf("inboxmq-%d", i)
		_, httpPort, _ := strings.Cut(p.HTTP, ":")
		for _, target := range []struct {
			port int
			addr string
		}{{ports["mqtt"], p.MQTTAddr}, {ports["websocket"], p.WSAddr}, {ports["http"], p.HTTP}} {
			// Health checks go to each node's own HTTP port here.
			re := regexp.MustCompile(fmt.Sprintf(`(?m) %s:%d( send-proxy-v2)?$`, name, target.port))
			if !re.MatchString(lbCfg) {
				t.Fatalf("%s has no server %s:%d", lbCfgFile, name, target.port)
			}
			lbCfg = re.ReplaceAllString(lbCfg, " "+target.addr+"${1} port "+httpPort)
		}
	}
	front := map[string]string{}
	for _, name := range publicPorts {
		front[name] = fmt.Sprintf("127.0.0.1:%d", freeLoopbackPort(t))
		lbCfg = rewrite(t, lbCfgFile, lbCfg, fmt.Sprintf("bind :%d\n", ports[name]), "bind "+front[name]+"\n")
	}

	var lbLog lockedBuffer
	lb := exec.Command(haproxy, "-db", "-f", writeTemp(t, "haproxy.cfg", lbCfg))
	lb.Stdout, lb.Stderr = &lbLog, &lbLog
	if err := lb.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = lb.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = lb.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy log:\n%s", lbLog.String())
		}
	})
	waitHealthy(t, "http://"+front["http"]+probePaths["readiness"], exited)

	bob := mqtttest.MustV3(t, front["mqtt"], "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, front["mqtt"], "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	carol, err := mqtttest.ConnectV3WS("ws://"+front["websocket"]+broker.DefaultConfig().Listeners.WebSocket.Path, "10031",
		mqtttest.Token(t, "10031"), mqtttest.V3Options{Clean: true})
	if err != nil {
		t.Fatalf("MQTT over WebSocket through HAProxy: %v", err)
	}
	defer carol.Disconnect(100)
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"through haproxy"}`)
	carol.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"over websocket"}`)
	got := map[string]bool{}
	for range 2 {
		got[bob.Inbox.Next(t, 15*time.Second).Str("ct")] = true
	}
	if !got["through haproxy"] || !got["over websocket"] {
		t.Fatalf("bob got %v", got)
	}

	// Every login was logged with the client's address from the PROXY
	// header, none with HAProxy's; the clients landed on more than one node.
	connected := regexp.MustCompile(`msg=connected uid=(\d+) .*remote=(\S+)`)
	seen, onNodes := map[string]string{}, 0
	for _, p := range nodes {
		lines := connected.FindAllStringSubmatch(p.Log(), -1)
		if len(lines) > 0 {
			onNodes++
		}
		for _, m := range lines {
			seen[m[1]] = m[2]
		}
	}
	for _, uid := range []string{"10021", "10001", "10031"} {
		if addr := seen[uid]; !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Errorf("%s logged from %q, want the client's 127.0.0.1 (HAProxy connects from 127.0.0.3)", uid, addr)
		}
	}
	if onNodes < 2 {
		t.Errorf("all clients on one node: HAProxy did not spread them (%v)", seen)
	}
	resp, err := http.Get("http://" + front["http"] + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("/healthz through HAProxy: %d", resp.StatusCode)
	}
}
