package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/inboxmq/inboxmq/auth"
)

// Broker kinds.
const (
	Inboxmq   = "inboxmq"
	Mosquitto = "mosquitto"
)

// adminName is the static admin account of inboxmq; against Mosquitto it
// is only a client id.
const adminName = "admin"

// Target is one broker under test and how to talk to it: the inboxmq
// contract (tokens, im/ requests, envelopes) or plain topics on Mosquitto.
type Target struct {
	Kind  string
	Addr  string // host:port of the MQTT listener
	Admin string // inboxmq: host:port of the admin listener (/metrics, /debug/pprof/)

	tokens    *auth.Tokens // inboxmq: signs user passwords
	adminPass string
	proc      *process // nil for an in-process broker

	// peers are the other nodes of a multi-node inboxmq (same secret,
	// same Redis); CPU, Stop and Log cover them too. nodeOf maps a user
	// index to its node: 0 is this Target, k the peer k-1.
	peers  []*Target
	nodeOf func(i int) int
	// redis, when set, is the Redis store the nodes share: dm reads its
	// command counts and CPU around the measured window.
	redis *redisProbe
}

// Nodes is how many broker processes the Target spans (1 unless it has peers).
func (t *Target) Nodes() int { return 1 + len(t.peers) }

// Node is the node user i connects to: 0 without peers.
func (t *Target) Node(i int) int {
	if t.nodeOf == nil || len(t.peers) == 0 {
		return 0
	}
	return t.nodeOf(i)
}

// AddrFor is the MQTT address user i connects to.
func (t *Target) AddrFor(i int) string {
	if n := t.Node(i); n > 0 {
		return t.peers[n-1].Addr
	}
	return t.Addr
}

// Password is what uid logs in with: a token for inboxmq, none for Mosquitto.
func (t *Target) Password(uid string) (string, error) {
	if t.tokens == nil {
		return "", nil
	}
	tok, err := t.tokens.Mint(auth.Claims{UID: uid, Nickname: "user-" + uid,
		Avatar: "https://a.example/" + uid + ".png", TTL: 6 * time.Hour})
	if err != nil {
		return "", fmt.Errorf("mint token for %s: %w", uid, err)
	}
	return tok, nil
}

// DMTopic is where a direct message to recipient is published.
func (t *Target) DMTopic(recipient string) string {
	if t.Kind == Inboxmq {
		return "im/sendmsg"
	}
	return "inbox/" + recipient
}

// NoticeTopic is where the admin publishes a notice for everyone.
func (t *Target) NoticeTopic() string {
	if t.Kind == Inboxmq {
		return "im/systemadmin"
	}
	return "broadcast"
}

// AdminLogin is the admin's username and password ("", "" on Mosquitto).
func (t *Target) AdminLogin() (string, string) {
	if t.Kind == Inboxmq {
		return adminName, t.adminPass
	}
	return "", ""
}

// PID is the broker process id, 0 for an in-process broker.
func (t *Target) PID() int {
	if t.proc == nil {
		return 0
	}
	return t.proc.cmd.Process.Pid
}

// Kill sends SIGKILL to the broker and waits for it to end.
func (t *Target) Kill() error {
	if t.proc == nil {
		return errors.New("in-process broker cannot be killed")
	}
	return t.proc.kill()
}

// Restart starts the broker again on the same address and data.
func (t *Target) Restart() error {
	if t.proc == nil {
		return errors.New("in-process broker cannot be restarted")
	}
	p, err := startProcess(t.Kind, t.proc.argv, t.Addr)
	if err != nil {
		return err
	}
	p.dir = t.proc.dir
	t.proc = p
	return nil
}

// Stop ends the broker gracefully (SIGTERM, then SIGKILL after 10 s) and
// removes its directory; then its peers, in the same way.
func (t *Target) Stop() error {
	var errs []error
	for _, p := range t.peers {
		errs = append(errs, p.Stop())
	}
	if t.proc == nil {
		return errors.Join(errs...)
	}
	err := t.proc.stop(10 * time.Second)
	if t.proc.dir != "" {
		if rerr := os.RemoveAll(t.proc.dir); rerr != nil && err == nil {
			err = fmt.Errorf("remove %s: %w", t.proc.dir, rerr)
		}
	}
	return errors.Join(append([]error{err}, errs...)...)
}

// Log returns the tail of what the broker (and each peer) printed.
func (t *Target) Log() string {
	if t.proc == nil {
		return ""
	}
	s := t.proc.tail()
	for k, p := range t.peers {
		if l := p.Log(); l != "" {
			s += fmt.Sprintf("\n[node %d]\n%s", k+2, l)
		}
	}
	return s
}

// RSS is the broker's resident set in bytes (VmRSS in /proc/PID/status).
func (t *Target) RSS() (int64, error) {
	pid := t.PID()
	if pid == 0 {
		pid = os.Getpid()
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("read broker RSS: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("parse VmRSS %q: %w", rest, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", pid)
}

// CPU is the user+system CPU time the broker has used so far, summed over
// its peers.
func (t *Target) CPU() (time.Duration, error) {
	pid := t.PID()
	if pid == 0 {
		pid = os.Getpid()
	}
	sum, err := procCPU(pid)
	for _, p := range t.peers {
		c, perr := p.CPU()
		sum += c
		err = errors.Join(err, perr)
	}
	return sum, err
}

// procCPU is the user+system CPU time process pid has used so far
// (/proc/PID/stat).
func procCPU(pid int) (time.Duration, error) {
	user, sys, err := procCPUSplit(pid)
	return user + sys, err
}

// procCPUSplit is procCPU in user and kernel (system) time.
func procCPUSplit(pid int) (user, sys time.Duration, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, fmt.Errorf("read CPU time: %w", err)
	}
	user, sys, err = parseProcStat(string(b))
	if err != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return user, sys, nil
}

// parseProcStat reads utime and stime (fields 14 and 15, in USER_HZ
// ticks) from a /proc/PID/stat line.
func parseProcStat(s string) (user, sys time.Duration, err error) {
	// Fields after the command name, which is in parentheses and may hold
	// spaces and parentheses itself: the last ')' ends it.
	end := strings.LastIndexByte(s, ')')
	if end < 0 {
		return 0, 0, errors.New("no command name")
	}
	fields := strings.Fields(s[end+1:])
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("%d fields after the command name, want at least 13", len(fields))
	}
	utime, err1 := strconv.ParseUint(fields[11], 10, 63)
	stime, err2 := strconv.ParseUint(fields[12], 10, 63)
	if err := errors.Join(err1, err2); err != nil {
		return 0, 0, fmt.Errorf("utime and stime: %w", err)
	}
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime) * time.Second / ticks, time.Duration(stime) * time.Second / ticks, nil
}

// StartTarget starts a fresh broker of kind in a new temporary directory.
func StartTarget(kind string, o Options) (*Target, error) {
	var secret []byte
	if kind == Inboxmq {
		var err error
		if secret, err = newSecret(); err != nil {
			return nil, err
		}
	}
	return startTarget(kind, o, secret, "")
}

// startTarget is StartTarget with inboxmq's secret and extra YAML for its
// config (ignored for Mosquitto). A broker that exits before listening is
// started again on new ports, twice at most: between freePort and the
// broker's bind, a parallel test can take a port (see owner.go).
func startTarget(kind string, o Options, secret []byte, extra string) (*Target, error) {
	for attempt := 1; ; attempt++ {
		t, err := startTargetOnce(kind, o, secret, extra)
		if err == nil || !errors.Is(err, errExitedEarly) || attempt == 3 {
			return t, err
		}
	}
}

func startTargetOnce(kind string, o Options, secret []byte, extra string) (*Target, error) {
	dir, err := os.MkdirTemp("", "inboxbench-"+kind+"-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	port, err := freePort()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	t := &Target{Kind: kind, Addr: addr}
	var argv []string
	switch kind {
	case Inboxmq:
		argv, err = t.inboxmqConfig(dir, addr, o.Pprof, o.InboxmqBin, secret, extra)
	case Mosquitto:
		argv, err = mosquittoConfig(dir, port, o.MosquittoBin)
	default:
		err = fmt.Errorf("unknown broker %q", kind)
	}
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p, err := startProcess(kind, pinnedArgv(o.pinBroker, argv), addr)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.dir = dir
	t.proc = p
	return t, nil
}

// newSecret is 32 random bytes, the seed of a broker's JWT secret and
// admin password.
func newSecret() ([]byte, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("secret: %w", err)
	}
	return secret, nil
}

// inboxmqConfig writes the broker's YAML config and returns the command
// line: the shipped inboxmq.yaml with the MQTT listener on addr, the
// WebSocket and public HTTP listeners off, the admin listener (metrics,
// Go's profiles) on pprof or else a free port, log level warn, the secret,
// an admin account, and the per-IP connection and per-user message rate
// limits off; every other key keeps its shipped value, and extra YAML is
// merged last. Nodes of one cluster get the same secret.
func (t *Target) inboxmqConfig(dir, addr, pprof, bin string, secret []byte, extra string) ([]string, error) {
	tokens, err := auth.NewTokens([]byte(hex.EncodeToString(secret)))
	if err != nil {
		return nil, fmt.Errorf("tokens: %w", err)
	}
	t.tokens = tokens
	t.adminPass = "bench-" + hex.EncodeToString(secret[:8])
	hash, err := auth.HashPassword(t.adminPass)
	if err != nil {
		return nil, fmt.Errorf("hash admin password: %w", err)
	}
	t.Admin = pprof
	if t.Admin == "" {
		port, err := freePort()
		if err != nil {
			return nil, err
		}
		t.Admin = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	}
	cfg, err := shippedConfig(fmt.Sprintf(`data_dir: %q
log: {level: warn}
listeners:
  mqtt: {address: %q}
  websocket: {address: ""}
  http: {address: ""}
  admin: {address: %q, pprof: true}
auth:
  jwt_secret: %q
  accounts:
    - {name: %s, password_hash: %q, role: admin}
# Abuse limits off: every harness client comes from 127.0.0.1, and each
# sender publishes far faster than a person types. Mosquitto has neither.
limits:
  connections_per_ip: 0
  message_rate: 0
`, filepath.Join(dir, "data"), addr, t.Admin, hex.EncodeToString(secret), adminName, hash), extra)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "inboxmq.yaml")
	if err := os.WriteFile(path, cfg, 0o600); err != nil {
		return nil, fmt.Errorf("write config: %w", err)
	}
	if bin == "" {
		return nil, errors.New("no inboxmq binary (Run builds one when -inboxmq-bin is empty)")
	}
	return []string{bin, "--config", path}, nil
}

// MosquittoAutosave is the snapshot interval used for Mosquitto: Debian's
// /etc/mosquitto/mosquitto.conf sets none, so Mosquitto's default applies.
const MosquittoAutosave = 1800

// mosquittoConfig writes a Mosquitto config as close to inboxmq's
// behaviour as Mosquitto allows: persistence on (snapshots every
// MosquittoAutosave seconds and at clean shutdown), no per-client limit
// that drops queued messages, the same in-flight window (64) as inboxmq's
// delivery_window, and TCP_NODELAY like Go's sockets.
func mosquittoConfig(dir string, port int, bin string) ([]string, error) {
	bin, err := MosquittoPath(bin)
	if err != nil {
		return nil, err
	}
	cfg := fmt.Sprintf(`listener %d 127.0.0.1
allow_anonymous true
persistence true
persistence_location %s/
autosave_interval %d
max_queued_messages 1000000
max_queued_bytes 0
max_inflight_messages 64
max_connections -1
set_tcp_nodelay true
log_dest stderr
log_type error
log_type warning
`, port, dir, MosquittoAutosave)
	if os.Geteuid() == 0 {
		cfg += "user root\n" // else it drops to "mosquitto", who cannot write dir
	}
	path := filepath.Join(dir, "mosquitto.conf")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		return nil, fmt.Errorf("write mosquitto config: %w", err)
	}
	return []string{bin, "-c", path}, nil
}

// MosquittoPath resolves the mosquitto binary; Debian installs it in
// /usr/sbin, which is not on every user's PATH.
func MosquittoPath(bin string) (string, error) {
	path, err := exec.LookPath(bin)
	if err == nil {
		return path, nil
	}
	if bin == "mosquitto" {
		if _, serr := os.Stat("/usr/sbin/mosquitto"); serr == nil {
			return "/usr/sbin/mosquitto", nil
		}
	}
	return "", fmt.Errorf("mosquitto not found (install it: apt-get install mosquitto): %w", err)
}

// BuildInboxmq builds ./cmd/inboxmq of this module as it ships (`make
// build`: static, so Pebble's memtables are in the Go heap, and -trimpath)
// into a new temporary directory and returns the binary and the
// directory, which the caller removes.
func BuildInboxmq() (bin, dir string, err error) {
	root, err := moduleRoot()
	if err != nil {
		return "", "", err
	}
	dir, err = os.MkdirTemp("", "inboxbench-bin-")
	if err != nil {
		return "", "", fmt.Errorf("temp dir: %w", err)
	}
	bin = filepath.Join(dir, "inboxmq")
	cmd := exec.Command("make", "--no-print-directory", "build", "BIN="+bin)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(dir)
		return "", "", fmt.Errorf("make build: %w\n%s", err, out)
	}
	return bin, dir, nil
}

func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("working dir: %w", err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.mod not found: run inboxbench inside the inboxmq module or pass -inboxmq-bin")
		}
		dir = parent
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// process is a running broker binary.
type process struct {
	kind   string
	argv   []string
	dir    string // removed by Target.Stop
	cmd    *exec.Cmd
	exited chan struct{}
	err    error // how the process ended; set before exited is closed

	mu  sync.Mutex
	out []byte // the last 64 KiB of stdout and stderr
}

// Write keeps the tail of the broker's output for error reports.
func (p *process) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.out = append(p.out, b...)
	if len(p.out) > 64<<10 {
		p.out = append(p.out[:0], p.out[len(p.out)-32<<10:]...)
	}
	return len(b), nil
}

func (p *process) tail() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return string(p.out)
}

// startProcess runs argv and waits until addr accepts connections. The
// child inherits the raised RLIMIT_NOFILE, and gets SIGKILL if the
// harness dies.
func startProcess(kind string, argv []string, addr string) (*process, error) {
	p := &process{kind: kind, argv: argv, exited: make(chan struct{})}
	p.cmd = exec.Command(argv[0], argv[1:]...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", kind, err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.exited) }()
	_, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s address %q: %w", kind, addr, err), p.kill())
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, errors.Join(fmt.Errorf("%s address %q: %w", kind, addr, err), p.kill())
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			c.Close()
			// Another process may have taken the port (see owner.go): then
			// the broker fails to bind it and exits, reported below.
			owns, oerr := ownsListener(p.cmd.Process.Pid, port)
			if oerr != nil {
				select {
				case <-p.exited: // its /proc entry went with it
					return nil, fmt.Errorf("%s %w on %s:\n%s", kind, errExitedEarly, addr, p.tail())
				default:
					return nil, errors.Join(oerr, p.kill())
				}
			}
			if owns {
				return p, nil
			}
		}
		select {
		case <-p.exited:
			return nil, fmt.Errorf("%s %w on %s:\n%s", kind, errExitedEarly, addr, p.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			if err := p.kill(); err != nil {
				return nil, fmt.Errorf("%s did not listen on %s within 30 s (%w):\n%s", kind, addr, err, p.tail())
			}
			return nil, fmt.Errorf("%s did not listen on %s within 30 s:\n%s", kind, addr, p.tail())
		}
	}
}

// errExitedEarly is a broker that ended before it listened: usually a port
// taken by another process.
var errExitedEarly = errors.New("exited before listening")

// kill sends SIGKILL and waits until the process has been reaped.
func (p *process) kill() error {
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("kill %s: %w", p.kind, err)
	}
	<-p.exited
	return nil
}

func (p *process) stop(timeout time.Duration) error {
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s had exited: %w", p.kind, p.err)
		}
		return nil
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("stop %s: %w", p.kind, err)
	}
	select {
	case <-p.exited:
		if p.err != nil {
			return fmt.Errorf("%s exit after SIGTERM: %w", p.kind, p.err)
		}
		return nil
	case <-time.After(timeout):
		return errors.Join(fmt.Errorf("%s did not stop within %s; killed", p.kind, timeout), p.kill())
	}
}
