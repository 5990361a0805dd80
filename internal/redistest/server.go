package redistest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// startTimeout bounds how long a server may take to answer PING. Loading
// a big AOF is the slow case; test data is small.
const startTimeout = 15 * time.Second

// Config shapes a server.
type Config struct {
	// AOF turns on the append-only file with appendfsync always, so that
	// a killed server loses nothing it acknowledged. Without it the
	// server keeps nothing on disk.
	AOF bool
	// Cluster starts the server in cluster mode (see StartCluster).
	Cluster bool
	// TLS makes the server speak only TLS on its port.
	TLS *TLS
}

// TLS is a server's TLS setup: PEM files, and how the helper itself
// connects to check that the server is up.
type TLS struct {
	Cert, Key string
	CA        string // CAs of client certificates; redis-server needs one
	// AuthClients refuses clients without a certificate signed by CA.
	AuthClients bool
	Client      *tls.Config // for the helper's PING
}

// Server is a redis-server process on 127.0.0.1.
type Server struct {
	// Addr is host:port, stable across Restart.
	Addr string
	// Dir is the server's working directory: AOF, cluster config, log.
	Dir string

	bin  string
	port int
	cfg  Config

	mu   sync.Mutex
	cmd  *exec.Cmd     // nil while not running
	done chan struct{} // closed when cmd has exited
}

// errExited says the process ended before it answered, which on a fresh
// port is almost always a port taken between picking and binding it.
var errExited = errors.New("redis-server exited before it answered PING")

// Launch starts a server in dir, which must exist. Unlike Start it is not
// tied to a test, so a TestMain can share one server between tests; the
// caller must Kill it.
func Launch(dir string, cfg Config) (*Server, error) {
	bin, err := exec.LookPath("redis-server")
	if err != nil {
		return nil, fmt.Errorf("redistest: redis-server is not installed (apt-get install -y redis-server, or make deps): %w", err)
	}
	var last error
	for range 5 {
		port, err := freePort(cfg.Cluster)
		if err != nil {
			return nil, fmt.Errorf("redistest: %w", err)
		}
		s := &Server{Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), Dir: dir, bin: bin, port: port, cfg: cfg}
		err = s.start()
		if err == nil {
			return s, nil
		}
		if !errors.Is(err, errExited) {
			return nil, err
		}
		last = err
	}
	return nil, last
}

// Start starts a server in a temporary directory and kills it when tb
// ends. It fails tb when redis-server is missing or does not start.
func Start(tb testing.TB, cfg Config) *Server {
	tb.Helper()
	s, err := Launch(tb.TempDir(), cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := s.Kill(); err != nil {
			tb.Error(err)
		}
	})
	return s
}

func (s *Server) args() []string {
	port := []string{"--port", strconv.Itoa(s.port)}
	if t := s.cfg.TLS; t != nil {
		auth := "no"
		if t.AuthClients {
			auth = "yes"
		}
		port = []string{"--port", "0", "--tls-port", strconv.Itoa(s.port), "--tls-cert-file", t.Cert,
			"--tls-key-file", t.Key, "--tls-ca-cert-file", t.CA, "--tls-auth-clients", auth}
	}
	a := append(port,
		"--bind", "127.0.0.1",
		"--dir", s.Dir,
		"--save", "",
		"--daemonize", "no",
		"--logfile", "",
	)
	if s.cfg.AOF {
		a = append(a, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		a = append(a, "--appendonly", "no")
	}
	if s.cfg.Cluster {
		a = append(a, "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "2000")
	}
	return a
}

// start runs the process and waits until it answers PING.
func (s *Server) start() error {
	logPath := filepath.Join(s.Dir, "redis.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("redistest: %w", err)
	}
	cmd := exec.Command(s.bin, s.args()...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return errors.Join(fmt.Errorf("redistest: start redis-server: %w", err), logf.Close())
	}
	done := make(chan struct{})
	var exit error // how the process ended; read after done is closed
	go func() {
		exit = errors.Join(cmd.Wait(), logf.Close())
		close(done)
	}()
	s.mu.Lock()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	deadline := time.Now().Add(startTimeout)
	for {
		select {
		case <-done:
			return fmt.Errorf("redistest: %s: %w (%v); log:\n%s", s.Addr, errExited, exit, tail(logPath))
		default:
		}
		reply, err := s.ping()
		if err == nil && reply == "PONG" {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.Join(
				fmt.Errorf("redistest: %s did not answer PING within %v (last: %q, %v); log:\n%s", s.Addr, startTimeout, reply, err, tail(logPath)),
				s.Kill())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Kill stops the server with SIGKILL, as a crash would, and waits for it
// to exit. Killing a stopped server does nothing.
func (s *Server) Kill() error {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd = nil
	s.mu.Unlock()
	if cmd == nil {
		return nil
	}
	if err := cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("redistest: kill %s: %w", s.Addr, err)
	}
	<-done
	return nil
}

// Pause stops the server with SIGSTOP: it keeps its connections and the
// kernel still accepts new ones, but it answers nothing until Resume, as a
// server stalled by a long fork, a swap storm or a VM pause.
func (s *Server) Pause() error { return s.signal(syscall.SIGSTOP) }

// Resume lets a paused server go on (SIGCONT).
func (s *Server) Resume() error { return s.signal(syscall.SIGCONT) }

func (s *Server) signal(sig syscall.Signal) error {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil {
		return fmt.Errorf("redistest: %s is not running", s.Addr)
	}
	if err := cmd.Process.Signal(sig); err != nil {
		return fmt.Errorf("redistest: signal %s: %w", s.Addr, err)
	}
	return nil
}

// Restart kills the server if it runs and starts it again on the same
// port and directory. With AOF the data comes back.
func (s *Server) Restart() error {
	if err := s.Kill(); err != nil {
		return err
	}
	return s.start()
}

// Client returns a client of the server, closed when tb ends. Context
// deadlines apply to its network waits.
func (s *Server) Client(tb testing.TB) *redis.Client {
	tb.Helper()
	c := redis.NewClient(&redis.Options{Addr: s.Addr, ContextTimeoutEnabled: true})
	tb.Cleanup(func() {
		if err := c.Close(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// freePort returns a loopback port that was free a moment ago; for a
// cluster node, its bus port (port + 10000) was free too.
func freePort(cluster bool) (int, error) {
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, fmt.Errorf("find a free port: %w", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		if !cluster {
			return port, l.Close()
		}
		if port+10000 > 65535 {
			if err := l.Close(); err != nil {
				return 0, err
			}
			continue
		}
		bus, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+10000)))
		if err != nil {
			if err := l.Close(); err != nil {
				return 0, err
			}
			continue
		}
		return port, errors.Join(l.Close(), bus.Close())
	}
	return 0, errors.New("no free port pair for a cluster node")
}

func (s *Server) ping() (string, error) {
	if s.cfg.TLS != nil {
		return DoTLS(s.Addr, time.Second, s.cfg.TLS.Client, "PING")
	}
	return Do(s.Addr, time.Second, "PING")
}

// DoTLS is Do over TLS with conf.
func DoTLS(addr string, timeout time.Duration, conf *tls.Config, args ...string) (string, error) {
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: timeout}, "tcp", addr, conf)
	if err != nil {
		return "", err
	}
	return do(conn, timeout, args)
}

// Do sends one command to addr on a fresh connection and returns the
// reply: a simple or bulk string, or an integer in decimal. An error reply
// is returned as an error. It needs no client, so the helpers can probe a
// server that is starting.
func Do(addr string, timeout time.Duration, args ...string) (string, error) {
	conn, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	return do(conn, timeout, args)
}

func do(conn net.Conn, timeout time.Duration, args []string) (string, error) {
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		return "", err
	}
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(conn, b.String()); err != nil {
		return "", err
	}
	r := bufio.NewReader(conn)
	line, err := r.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", err
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(r, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	}
	return "", fmt.Errorf("unsupported reply %q", line)
}

// tail returns the end of a log file, for error messages.
func tail(path string) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	const max = 2000
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// CommandCalls is how many times the server at addr has run cmd (lower
// case, e.g. "zrange") since it started or since CONFIG RESETSTAT, from
// INFO commandstats; 0 when it never ran.
func CommandCalls(addr, cmd string) (int, error) {
	info, err := Do(addr, 5*time.Second, "INFO", "commandstats")
	if err != nil {
		return 0, fmt.Errorf("INFO commandstats: %w", err)
	}
	for line := range strings.Lines(info) {
		stats, ok := strings.CutPrefix(strings.TrimSpace(line), "cmdstat_"+cmd+":calls=")
		if !ok {
			continue
		}
		calls, _, _ := strings.Cut(stats, ",")
		n, err := strconv.Atoi(calls)
		if err != nil {
			return 0, fmt.Errorf("commandstats line %q: %w", line, err)
		}
		return n, nil
	}
	return 0, nil
}
