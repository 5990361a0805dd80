package examples

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// wait bounds every step; the whole test takes a few seconds.
const wait = 30 * time.Second

// example is one client program and how to run it.
type example struct {
	name string
	// find returns the command line prefix that runs the example, or why
	// it cannot run on this machine.
	find func(t *testing.T) ([]string, error)
	// uids: a listener and a sender, distinct per example so that the
	// examples run in parallel without single login mixing them up.
	listener, sender string
}

// TestExamples runs each example of docs/clients.md against the real
// binary: a message sent while the peer listens arrives and its sender
// prints the stored id; one sent while the peer is offline arrives when it
// reconnects with its persistent session; a second login of the peer makes
// the first print the Logout envelope and stop; a refused request prints
// the Error envelope and exits 1. The Java and PHP token minting run too.
func TestExamples(t *testing.T) {
	examples := []example{
		{name: "node", find: findNode, listener: "31001", sender: "31002"},
		{name: "python", find: findPython, listener: "32001", sender: "32002"},
		{name: "go", find: buildGo, listener: "33001", sender: "33002"},
	}
	p := mqtttest.StartProcess(t, mqtttest.WriteConfig(t, t.TempDir()))
	host, port, ok := strings.Cut(p.MQTTAddr, ":")
	if !ok {
		t.Fatalf("MQTT address %q", p.MQTTAddr)
	}
	env := append(os.Environ(),
		"INBOXMQ_JWT_SECRET="+mqtttest.Secret,
		"INBOXMQ_URL=mqtt://"+p.MQTTAddr,
		"INBOXMQ_HOST="+host, "INBOXMQ_PORT="+port)
	for _, ex := range examples {
		t.Run(ex.name, func(t *testing.T) {
			t.Parallel()
			argv, err := ex.find(t)
			if err != nil {
				missing(t, ex.name, err)
			}
			chat(t, ex, argv, env)
		})
	}
	for _, m := range []minter{
		{name: "java-token", runtime: "java", script: filepath.Join("java", "MintToken.java"), uid: "34001"},
		{name: "php-token", runtime: "php", script: filepath.Join("php", "mint_token.php"), uid: "35001"},
	} {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			mintedToken(t, m, p.MQTTAddr, env)
		})
	}
}

// minter is a token-minting snippet of docs/clients.md run as a program.
type minter struct {
	name, runtime, script, uid string
}

// mintedToken (TestExamples/java-token, php-token): the minting snippet,
// with a nickname outside ASCII, makes a token the broker accepts for its
// uid and refuses for another.
func mintedToken(t *testing.T, m minter, addr string, env []string) {
	runtime, err := exec.LookPath(m.runtime)
	if err != nil {
		missing(t, m.name, err)
	}
	script, err := filepath.Abs(m.script)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(runtime, script, m.uid, "张三")
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", m.runtime, m.script, err, out)
	}
	token := strings.TrimSpace(string(out))
	c, err := mqtttest.ConnectV3(addr, m.uid, token, mqtttest.V3Options{Clean: true})
	if err != nil {
		t.Fatalf("the broker refused the %s token %s: %v", m.name, token, err)
	}
	c.Disconnect(100)
	// Deny row: the same token for another uid is refused.
	if c, err := mqtttest.ConnectV3(addr, m.uid+"9", token, mqtttest.V3Options{Clean: true}); err == nil {
		c.Disconnect(100)
		t.Fatalf("a token for %s logged in as %s9", m.uid, m.uid)
	}
}

// missing fails under INBOXMQ_REQUIRE_EXAMPLES=1 (make test installs every
// runtime) and skips otherwise.
func missing(t *testing.T, what string, err error) {
	t.Helper()
	if os.Getenv("INBOXMQ_REQUIRE_EXAMPLES") == "1" {
		t.Fatalf("%s example cannot run: %v", what, err)
	}
	t.Skipf("%s example cannot run (make test installs what it needs): %v", what, err)
}

// chat runs one example's programs through the scenario of TestExamples.
func chat(t *testing.T, ex example, argv, env []string) {
	run := func(args ...string) *proc {
		return startProc(t, env, append(append([]string(nil), argv...), args...)...)
	}
	text := "hello from " + ex.name + " 你好"

	// Online: the sender prints the id, the listener the message.
	listener := run("listen", ex.listener, "1")
	listener.line(t, regexp.MustCompile(`^ready$`))
	sender := run("send", ex.sender, ex.listener, text)
	id := sender.line(t, regexp.MustCompile(`^sent (\d{15,20})$`))[1]
	sender.exit(t, 0)
	listener.line(t, regexp.MustCompile(`^message `+id+` from `+ex.sender+`: `+regexp.QuoteMeta(text)+`$`))
	listener.exit(t, 0)

	// Offline: the persistent session gets it on reconnect (a copy of the
	// first message may come again if its PUBACK was cut by the exit).
	sender = run("send", ex.sender, ex.listener, text+" (offline)")
	id2 := sender.line(t, regexp.MustCompile(`^sent (\d{15,20})$`))[1]
	sender.exit(t, 0)
	if len(id2) < len(id) || (len(id2) == len(id) && id2 <= id) { // compared as integers
		t.Errorf("second msgid %s is not after the first %s", id2, id)
	}
	first := run("listen", ex.listener)
	first.line(t, regexp.MustCompile(`^message `+id2+` from `+ex.sender+`: `+regexp.QuoteMeta(text+" (offline)")+`$`))

	// Single login: a second login of the listener logs the first out.
	second := run("listen", ex.listener)
	second.line(t, regexp.MustCompile(`^ready$`))
	first.line(t, regexp.MustCompile(`^logout: logged in elsewhere$`))
	first.exit(t, 0)
	second.stop()

	// A refused request (to oneself: bad_uid) prints the Error envelope.
	refused := run("send", ex.sender, ex.sender, "to myself")
	refused.line(t, regexp.MustCompile(`^error bad_uid: `))
	refused.exit(t, 1)
}

// findNode: node, and the mqtt package installed by npm ci.
func findNode(t *testing.T) ([]string, error) {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		return nil, err
	}
	script, err := filepath.Abs(filepath.Join("node", "chat.mjs"))
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join("node", "node_modules", "mqtt", "package.json")); err != nil {
		return nil, fmt.Errorf("the mqtt package is not installed (cd examples/node && npm ci): %w", err)
	}
	return []string{node, script}, nil
}

// findPython: the first python3 that imports paho.mqtt; Debian's
// python3-paho-mqtt is in /usr/bin/python3's path, which may not be the
// python3 first on PATH.
func findPython(t *testing.T) ([]string, error) {
	t.Helper()
	script, err := filepath.Abs(filepath.Join("python", "chat.py"))
	if err != nil {
		return nil, err
	}
	candidates := []string{"python3", "/usr/bin/python3"}
	if p := os.Getenv("INBOXMQ_PYTHON"); p != "" {
		candidates = []string{p}
	}
	var errs []error
	for _, py := range candidates {
		out, err := exec.Command(py, "-c", "import paho.mqtt.client").CombinedOutput()
		if err == nil {
			return []string{py, script}, nil
		}
		errs = append(errs, fmt.Errorf("%s: %w: %s", py, err, strings.TrimSpace(string(out))))
	}
	return nil, fmt.Errorf("no python3 with paho-mqtt (apt-get install python3-paho-mqtt): %w", errors.Join(errs...))
}

// buildGo compiles examples/go/chat.
func buildGo(t *testing.T) ([]string, error) {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chat")
	out, err := exec.Command("go", "build", "-o", bin, "./go/chat").CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("go build ./examples/go/chat: %w\n%s", err, out)
	}
	return []string{bin}, nil
}

// proc is a running example, its stdout read line by line.
type proc struct {
	cmd    *exec.Cmd
	lines  chan string
	exited chan struct{}
	mu     sync.Mutex
	out    strings.Builder // stdout and stderr, for failure messages
}

func startProc(t *testing.T, env []string, argv ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(argv[0], argv[1:]...), lines: make(chan string, 100), exited: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = writerFunc(func(b []byte) { p.record("stderr: " + string(b)) })
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", argv, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.record(sc.Text() + "\n")
			p.lines <- sc.Text()
		}
		close(p.lines)
		_ = p.cmd.Wait() // the exit status is read in exit
		close(p.exited)
	}()
	t.Cleanup(p.stop)
	return p
}

func (p *proc) record(s string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out.WriteString(s)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// line waits for a stdout line matching re and returns its submatches.
func (p *proc) line(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case l, ok := <-p.lines:
			if !ok {
				t.Fatalf("%v ended without printing a line matching %s:\n%s", p.cmd.Args, re, p.output())
			}
			if m := re.FindStringSubmatch(l); m != nil {
				return m
			}
		case <-deadline:
			t.Fatalf("%v printed no line matching %s within %s:\n%s", p.cmd.Args, re, wait, p.output())
		}
	}
}

// exit waits for the program to end and checks its exit code.
func (p *proc) exit(t *testing.T, want int) {
	t.Helper()
	lines, deadline := p.lines, time.After(wait)
	for exited := false; !exited; {
		select {
		case _, ok := <-lines: // drain, so that the reader reaches Wait
			if !ok {
				lines = nil
			}
		case <-p.exited:
			exited = true
		case <-deadline:
			t.Fatalf("%v did not exit within %s:\n%s", p.cmd.Args, wait, p.output())
		}
	}
	if got := p.cmd.ProcessState.ExitCode(); got != want {
		t.Fatalf("%v exited %d, want %d:\n%s", p.cmd.Args, got, want, p.output())
	}
}

// stop kills the program if it still runs.
func (p *proc) stop() {
	select {
	case <-p.exited:
		return
	default:
	}
	_ = p.cmd.Process.Kill()
	go func() {
		for range p.lines {
		}
	}()
	<-p.exited
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }
