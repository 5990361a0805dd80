package mqtttest

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/broker"
)

// Secret signs the tokens of test brokers.
const Secret = "test-secret-test-secret-test-secret-0123456789"

// Static accounts of test brokers.
const (
	AdminName       = "admin"
	AdminPassword   = "admin-test-password"
	ServiceName     = "backend"
	ServicePassword = "service-test-password"
)

var (
	hashOnce               sync.Once
	adminHash, serviceHash string
)

func hashes(tb testing.TB) (string, string) {
	tb.Helper()
	hashOnce.Do(func() {
		var err error
		if adminHash, err = auth.HashPassword(AdminPassword); err != nil {
			panic(err)
		}
		if serviceHash, err = auth.HashPassword(ServicePassword); err != nil {
			panic(err)
		}
	})
	return adminHash, serviceHash
}

// Config is a test broker config: loopback port-0 listeners, a fresh data
// dir, the test secret, and the admin and service accounts.
func Config(tb testing.TB) broker.Config {
	tb.Helper()
	admin, service := hashes(tb)
	cfg := broker.DefaultConfig()
	cfg.DataDir = tb.TempDir()
	cfg.Listeners.MQTT.Address = "127.0.0.1:0"
	cfg.Listeners.WebSocket.Address = "127.0.0.1:0"
	cfg.Listeners.HTTP.Address = "127.0.0.1:0"
	cfg.Listeners.Admin.Address = "127.0.0.1:0"
	cfg.Auth.JWTSecret = Secret
	cfg.Auth.Accounts = []broker.AccountConfig{
		{Name: AdminName, PasswordHash: admin, Role: "admin"},
		{Name: ServiceName, PasswordHash: service, Role: "service"},
	}
	cfg.Log.Level = "error"
	// Tests open many connections and send fast from loopback; the tests
	// of the limits turn them back on.
	cfg.Limits.ConnectionsPerIP = 0
	cfg.Limits.MessageRate = 0
	cfg.Limits.HTTPConnectionsPerIP = 0
	cfg.Limits.HTTPRequestsPerIP = 0
	if os.Getenv("INBOXMQ_TEST_LOG") != "" {
		cfg.Log.Level = "debug"
	}
	return cfg
}

// Start runs an in-process broker until the test ends.
func Start(tb testing.TB, cfg broker.Config) *broker.Broker {
	tb.Helper()
	return start(tb, cfg, os.Stderr)
}

// StartLogged is Start with the broker's log lines (at cfg.Log.Level)
// collected, for tests that check what an attack leaves in the log. The
// log is printed when the test fails.
func StartLogged(tb testing.TB, cfg broker.Config) (*broker.Broker, *Logs) {
	tb.Helper()
	logs := &Logs{}
	tb.Cleanup(func() {
		if tb.Failed() {
			tb.Logf("broker log:\n%s", logs.String())
		}
	})
	return start(tb, cfg, logs), logs
}

func start(tb testing.TB, cfg broker.Config, w io.Writer) *broker.Broker {
	tb.Helper()
	log, err := broker.NewLogger(cfg.Log, w)
	if err != nil {
		tb.Fatal(err)
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		tb.Fatalf("new broker: %v", err)
	}
	if err := b.Start(); err != nil {
		tb.Fatalf("start broker: %v", err)
	}
	tb.Cleanup(func() { _ = b.Close() })
	return b
}

var (
	tokensOnce sync.Once
	tokens     *auth.Tokens
)

// Token mints a user token with the test secret, valid for an hour.
func Token(tb testing.TB, uid string) string {
	tb.Helper()
	return TokenWith(tb, auth.Claims{UID: uid, Nickname: "nick-" + uid, Avatar: "https://a.example/" + uid + ".png", TTL: time.Hour})
}

// TokenWith mints a token with explicit claims.
func TokenWith(tb testing.TB, c auth.Claims) string {
	tb.Helper()
	tokensOnce.Do(func() {
		var err error
		if tokens, err = auth.NewTokens([]byte(Secret)); err != nil {
			panic(err)
		}
	})
	tok, err := tokens.Mint(c)
	if err != nil {
		tb.Fatalf("mint token: %v", err)
	}
	return tok
}

// Logs collects log output; it is safe for concurrent use.
type Logs struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Reset forgets everything logged so far.
func (l *Logs) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Reset()
}

// Wait waits until one logged line contains every one of parts, and
// returns that line.
func (l *Logs) Wait(tb testing.TB, timeout time.Duration, parts ...string) string {
	tb.Helper()
	deadline := time.Now().Add(timeout)
	for {
		for _, line := range strings.Split(l.String(), "\n") {
			if containsAll(line, parts) {
				return line
			}
		}
		if time.Now().After(deadline) {
			tb.Fatalf("no log line with %q within %s", parts, timeout)
			return ""
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func containsAll(s string, parts []string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}

// Quiet is a logger for tests that do not want broker logs.
func Quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }
