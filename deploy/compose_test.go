package deploy

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

type composeService struct {
	Image           string            `yaml:"image"`
	Command         []string          `yaml:"command"`
	Environment     map[string]string `yaml:"environment"`
	Ports           []string          `yaml:"ports"`
	Volumes         []string          `yaml:"volumes"`
	Networks        yaml.Node         `yaml:"networks"` // a list, or a map with addresses
	StopGracePeriod string            `yaml:"stop_grace_period"`
}

type composeFile struct {
	Services map[string]composeService `yaml:"services"`
	Networks map[string]struct {
		IPAM struct {
			Config []struct {
				Subnet string `yaml:"subnet"`
			} `yaml:"config"`
		} `yaml:"ipam"`
	} `yaml:"networks"`
}

func composeDir(t *testing.T) string {
	t.Helper()
	return filepath.Join(mqtttest.ModuleRoot(t), "deploy", "compose")
}

func readCompose(t *testing.T, name string) composeFile {
	t.Helper()
	var c composeFile
	if err := yaml.Unmarshal([]byte(readFile(t, filepath.Join(composeDir(t), name))), &c); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	if len(c.Services) == 0 {
		t.Fatalf("%s: no services", name)
	}
	return c
}

// publishedPorts maps the container ports a service publishes to their
// host ports.
func publishedPorts(t *testing.T, s composeService) map[int]string {
	t.Helper()
	out := map[int]string{}
	for _, p := range s.Ports {
		i := strings.LastIndex(p, ":")
		var container int
		if _, err := fmt.Sscan(p[i+1:], &container); err != nil {
			t.Fatalf("port %q: %v", p, err)
		}
		out[container] = p[:max(i, 0)]
	}
	return out
}

// checkPublic: the service publishes the broker's public ports and not the
// admin port.
func checkPublic(t *testing.T, name string, s composeService) {
	t.Helper()
	ports := defaultPorts(t)
	published := publishedPorts(t, s)
	for _, p := range publicPorts {
		if _, ok := published[ports[p]]; !ok {
			t.Errorf("%s does not publish %s (%d): %v", name, p, ports[p], s.Ports)
		}
	}
	if _, ok := published[ports["admin"]]; ok {
		t.Errorf("%s publishes the admin port %d", name, ports["admin"])
	}
}

// checkSecretFromEnvironment: the compose file passes the caller's secret
// and has none of its own.
func checkSecretFromEnvironment(t *testing.T, name string, s composeService) {
	t.Helper()
	if v := s.Environment[broker.SecretEnv]; !strings.HasPrefix(v, "${"+broker.SecretEnv+":?") {
		t.Errorf("%s: %s=%q, want ${%s:?...} (required from the caller, no default)", name, broker.SecretEnv, v, broker.SecretEnv)
	}
}

// makefileImage is the image name `make image` tags.
func makefileImage(t *testing.T) string {
	t.Helper()
	m := regexp.MustCompile(`(?m)^IMAGE\s*\?=\s*(\S+)$`).FindStringSubmatch(readFile(t, filepath.Join(mqtttest.ModuleRoot(t), "Makefile")))
	if m == nil {
		t.Fatal("no IMAGE ?= in the Makefile")
	}
	return m[1]
}

// The one-node compose file runs the image `make image` builds, publishes
// the public ports, keeps the store on a volume at the image's data_dir.
func TestComposeOneNode(t *testing.T) {
	setConfigEnv(t)
	c := readCompose(t, "compose.yaml")
	s, ok := c.Services["inboxmq"]
	if !ok {
		t.Fatal("no inboxmq service")
	}
	if s.Image != makefileImage(t)+":latest" {
		t.Errorf("image %q, make image builds %s:latest", s.Image, makefileImage(t))
	}
	checkPublic(t, "inboxmq", s)
	checkSecretFromEnvironment(t, "inboxmq", s)
	cfg, err := broker.LoadConfig(filepath.Join(mqtttest.ModuleRoot(t), "deploy", "image", "inboxmq.yaml"))
	if err != nil {
		t.Fatalf("the image's config: %v", err)
	}
	if !slices.ContainsFunc(s.Volumes, func(v string) bool { return strings.HasSuffix(v, ":"+cfg.DataDir) }) {
		t.Errorf("no volume at the image's data_dir %s: %v", cfg.DataDir, s.Volumes)
	}
	if d, err := time.ParseDuration(s.StopGracePeriod); err != nil || d < 30*time.Second {
		t.Errorf("stop_grace_period %q: want at least 30s for the drain", s.StopGracePeriod)
	}
}

// haproxyServers lists "backend -> server lines" of haproxy.cfg.
func haproxyServers(cfg string) map[string][]string {
	out := map[string][]string{}
	backend := ""
	for _, line := range strings.Split(cfg, "\n") {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 0 || strings.HasPrefix(fields[0], "#"):
		case !strings.HasPrefix(line, " "):
			backend = ""
			if fields[0] == "backend" && len(fields) > 1 {
				backend = fields[1]
			}
		case backend != "" && fields[0] == "server":
			out[backend] = append(out[backend], strings.Join(fields, " "))
		}
	}
	return out
}

// The cluster compose file: three nodes with their own node ids behind
// HAProxy, which sends PROXY protocol v2 to the ports the broker listens on
// and is the one address the nodes trust.
func TestComposeCluster(t *testing.T) {
	setConfigEnv(t)
	c := readCompose(t, "compose.cluster.yaml")
	ports := defaultPorts(t)
	var nodes []string
	ids := map[string]bool{}
	for name, s := range c.Services {
		if s.Image != makefileImage(t)+":latest" {
			continue
		}
		nodes = append(nodes, name)
		checkSecretFromEnvironment(t, name, s)
		id := s.Environment[broker.NodeIDEnv]
		if id == "" || ids[id] {
			t.Errorf("%s: %s=%q is missing or not unique", name, broker.NodeIDEnv, id)
		}
		ids[id] = true
		if len(s.Ports) > 0 {
			t.Errorf("%s publishes %v: clients must come through HAProxy", name, s.Ports)
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 {
		t.Fatalf("nodes %v, want 3", nodes)
	}
	node := c.Services[nodes[0]]
	i := slices.Index(node.Command, "--config")
	if i < 0 || i+1 >= len(node.Command) {
		t.Fatalf("%s: no --config in %v", nodes[0], node.Command)
	}
	var configFile string
	for _, v := range node.Volumes {
		if src, dst, _ := strings.Cut(strings.TrimSuffix(v, ":ro"), ":"); dst == node.Command[i+1] {
			configFile = src
		}
	}
	if configFile == "" {
		t.Fatalf("%s: %s is not mounted", nodes[0], node.Command[i+1])
	}
	cfg, err := broker.ParseConfig([]byte(readFile(t, filepath.Join(composeDir(t), configFile))))
	if err != nil {
		t.Fatalf("%s: %v", configFile, err)
	}
	if cfg.Store != "redis" {
		t.Errorf("%s: store %q, want redis", configFile, cfg.Store)
	}

	haproxy, ok := c.Services["haproxy"]
	if !ok {
		t.Fatal("no haproxy service")
	}
	checkPublic(t, "haproxy", haproxy)
	var nets map[string]struct {
		IPv4 string `yaml:"ipv4_address"`
	}
	if err := haproxy.Networks.Decode(&nets); err != nil {
		t.Fatalf("haproxy networks: %v", err)
	}
	var lbAddr string
	for name, n := range nets {
		lbAddr = n.IPv4
		for _, sub := range c.Networks[name].IPAM.Config {
			if _, subnet, err := net.ParseCIDR(sub.Subnet); err != nil || !subnet.Contains(net.ParseIP(lbAddr)) {
				t.Errorf("haproxy's address %s is not in network %s's subnet %s (%v)", lbAddr, name, sub.Subnet, err)
			}
		}
	}
	if lbAddr == "" {
		t.Fatal("haproxy has no fixed address for the nodes to trust")
	}
	if !slices.Equal(cfg.Listeners.ProxyProtocol.Trusted, []string{lbAddr}) || !slices.Equal(cfg.Listeners.TrustedProxies, []string{lbAddr}) {
		t.Errorf("the nodes trust PROXY headers from %v and X-Forwarded-For from %v; HAProxy is %s",
			cfg.Listeners.ProxyProtocol.Trusted, cfg.Listeners.TrustedProxies, lbAddr)
	}

	hcfg := readFile(t, filepath.Join(composeDir(t), "haproxy.cfg"))
	if !slices.ContainsFunc(haproxy.Volumes, func(v string) bool { return strings.HasPrefix(v, "./haproxy.cfg:") }) {
		t.Errorf("haproxy does not mount haproxy.cfg: %v", haproxy.Volumes)
	}
	for _, p := range publicPorts {
		if !strings.Contains(hcfg, fmt.Sprintf("bind :%d\n", ports[p])) {
			t.Errorf("haproxy.cfg binds no :%d (%s)", ports[p], p)
		}
	}
	if !strings.Contains(hcfg, fmt.Sprintf("check port %d", ports["http"])) || strings.Count(hcfg, "option httpchk GET "+probePaths["readiness"]) != 3 {
		t.Errorf("haproxy.cfg does not check each backend's %s on port %d", probePaths["readiness"], ports["http"])
	}
	servers := haproxyServers(hcfg)
	for backend, want := range map[string]struct {
		port  int
		proxy bool
	}{"nodes_mqtt": {ports["mqtt"], true}, "nodes_websocket": {ports["websocket"], true}, "nodes_http": {ports["http"], false}} {
		lines := servers[backend]
		if len(lines) != len(nodes) {
			t.Errorf("backend %s has %d servers, want one per node %v", backend, len(lines), nodes)
		}
		for _, n := range nodes {
			target := fmt.Sprintf("%s:%d", n, want.port)
			i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, " "+target) })
			switch {
			case i < 0:
				t.Errorf("backend %s does not send to %s", backend, target)
			case want.proxy != strings.HasSuffix(lines[i], " send-proxy-v2"):
				t.Errorf("backend %s: %q: send-proxy-v2 wanted: %v", backend, lines[i], want.proxy)
			}
		}
	}
}

// freeLoopbackPort is a port nothing listens on right now.
func freeLoopbackPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

func writeTemp(t *testing.T, name, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitHealthy polls url until it answers 200; it gives up when exited
// (which may be nil) is closed: the server died.
func waitHealthy(t *testing.T, url string, exited <-chan struct{}) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		select {
		case <-exited:
			t.Fatalf("the server behind %s exited (last: %v)", url, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never answered 200 (last: %v)", url, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
