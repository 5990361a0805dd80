package mqtttest

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// build is one go build of cmd/inboxmq, done at most once per test process.
type build struct {
	once sync.Once
	path string
	err  error
}

var raceBuild, plainBuild build

// Binary builds cmd/inboxmq with the race detector once per test process
// and returns its path.
func Binary(tb testing.TB) string {
	tb.Helper()
	return raceBuild.get(tb, "-race")
}

// PlainBinary builds cmd/inboxmq without the race detector, as it is
// shipped, once per test process: for measurements (memory, goroutines)
// that the race detector would distort.
func PlainBinary(tb testing.TB) string {
	tb.Helper()
	return plainBuild.get(tb)
}

func (b *build) get(tb testing.TB, flags ...string) string {
	tb.Helper()
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", "inboxmq-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, "inboxmq")
		root, err := moduleRoot()
		if err != nil {
			b.err = err
			return
		}
		args := append(append([]string{"build"}, flags...), "-o", b.path, "./cmd/inboxmq")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if b.err != nil {
		tb.Fatal(b.err)
	}
	return b.path
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", fmt.Errorf("go.mod not found above %s", dir)
		}
		dir = parent
	}
}

// WriteConfig writes a YAML config for the binary: loopback port-0
// listeners, dataDir, the test secret and accounts, plus extra YAML lines.
// Tests connect and send fast from one address, so the per-address and
// per-account limits are off, unless an extra line starts a limits block.
// An extra line that starts a listeners block replaces the default one
// (ListenersYAML is that block, to add keys to).
func WriteConfig(tb testing.TB, dataDir string, extra ...string) string {
	tb.Helper()
	admin, service := hashes(tb)
	limits := `limits:
  connections_per_ip: 0   # tests connect fast from one address
  message_rate: 0
  http_connections_per_ip: 0
  http_requests_per_ip: 0
`
	listeners := ListenersYAML
	for _, line := range extra {
		if strings.HasPrefix(line, "limits:") {
			limits = ""
		}
		if strings.HasPrefix(line, "listeners:") {
			listeners = ""
		}
	}
	text := fmt.Sprintf(`data_dir: %q
log:
  level: info
`+listeners+`auth:
  jwt_secret: %q
  accounts:
    - {name: %s, password_hash: %q, role: admin}
    - {name: %s, password_hash: %q, role: service}
`, dataDir, Secret, AdminName, admin, ServiceName, service) + limits + strings.Join(extra, "\n")
	path := filepath.Join(tb.TempDir(), "inboxmq.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		tb.Fatal(err)
	}
	return path
}

// ListenersYAML is WriteConfig's listeners block: every listener on a
// loopback port 0 (the bound addresses are read from the start log).
const ListenersYAML = `listeners:
  mqtt: {address: "127.0.0.1:0"}
  websocket: {address: "127.0.0.1:0", path: /mqtt}
  http: {address: "127.0.0.1:0"}
  admin: {address: "127.0.0.1:0"}
`

// Process is a running inboxmq binary.
type Process struct {
	Cmd                    *exec.Cmd
	MQTTAddr, WSAddr, HTTP string
	Admin                  string // the admin listener: /metrics, the admin API
	mu                     sync.Mutex
	log                    strings.Builder
	logBytes               atomic.Int64 // all the process ever logged, also what log dropped
	exited                 chan struct{}
}

// LogBytes is how many bytes the process has logged since it started.
func (p *Process) LogBytes() int64 { return p.logBytes.Load() }

// maxProcessLog bounds the log a Process keeps in memory.
const maxProcessLog = 2 << 20

var startedLine = regexp.MustCompile(`msg="inboxmq started" mqtt=(\S*) websocket=(\S*) http=(\S*) admin=(\S*)`)

// StartProcess runs the binary (built with the race detector) with a
// config and waits until it listens.
func StartProcess(tb testing.TB, configPath string) *Process {
	tb.Helper()
	return StartBinary(tb, Binary(tb), configPath)
}

// StartBinary is StartProcess with a given build of the binary (Binary or
// PlainBinary).
func StartBinary(tb testing.TB, bin, configPath string) *Process {
	tb.Helper()
	p := &Process{Cmd: exec.Command(bin, "--config", configPath), exited: make(chan struct{})}
	stderr, err := p.Cmd.StderrPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := p.Cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	ready := make(chan []string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.logBytes.Add(int64(len(line) + 1))
			p.mu.Lock()
			p.log.WriteString(line + "\n")
			if p.log.Len() > maxProcessLog { // long runs (the soak): keep the recent half
				tail := p.log.String()[p.log.Len()-maxProcessLog/2:]
				p.log.Reset()
				p.log.WriteString("[earlier log lines dropped]\n" + tail)
			}
			p.mu.Unlock()
			if m := startedLine.FindStringSubmatch(line); m != nil {
				ready <- m
			}
		}
		n, _ := io.Copy(io.Discard, stderr) // after a line over the scanner's limit
		p.logBytes.Add(n)
	}()
	go func() { _ = p.Cmd.Wait(); close(p.exited) }()
	tb.Cleanup(func() {
		_ = p.Cmd.Process.Kill()
		<-p.exited
		if tb.Failed() {
			tb.Logf("broker log:\n%s", p.Log())
		}
	})
	select {
	case m := <-ready:
		p.MQTTAddr, p.WSAddr, p.HTTP, p.Admin = m[1], m[2], m[3], m[4]
	case <-p.exited:
		tb.Fatalf("inboxmq exited before listening:\n%s", p.Log())
	case <-time.After(60 * time.Second):
		tb.Fatalf("inboxmq did not start:\n%s", p.Log())
	}
	return p
}

// Log returns what the process logged so far.
func (p *Process) Log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

// PID is the process id, for reading /proc/PID.
func (p *Process) PID() int { return p.Cmd.Process.Pid }

// Exited reports whether the process has ended, and how.
func (p *Process) Exited() (string, bool) {
	select {
	case <-p.exited:
		return p.Cmd.ProcessState.String(), true
	default:
		return "", false
	}
}

// Kill sends SIGKILL and waits for the process to end.
func (p *Process) Kill(tb testing.TB) {
	tb.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGKILL)
	<-p.exited
}

// Stop sends SIGTERM and returns the exit code.
func (p *Process) Stop(tb testing.TB, timeout time.Duration) int {
	tb.Helper()
	_ = p.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(timeout):
		tb.Fatalf("inboxmq did not stop within %s:\n%s", timeout, p.Log())
	}
	return p.Cmd.ProcessState.ExitCode()
}
