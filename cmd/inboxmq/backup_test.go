package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// runCLI runs the binary to its end and returns its exit code and output.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.Command(mqtttest.Binary(t), args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if _, ok := err.(*exec.ExitError); err != nil && !ok {
		t.Fatal(err)
	}
	return cmd.ProcessState.ExitCode(), out.String(), errOut.String()
}

// offlineInbox makes bob's persistent session and leaves, so what is sent
// to him waits in the store.
func offlineInbox(t *testing.T, mqttAddr string) {
	t.Helper()
	bob := mqtttest.MustV3(t, mqttAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	bob.Disconnect(100)
}

// restoredMessages starts a broker on dataDir, as an operator restoring a
// backup would, and returns what bob's session receives there: it must
// be m0, m1, ... without a gap.
func restoredMessages(t *testing.T, dataDir string) int {
	t.Helper()
	p := mqtttest.StartProcess(t, mqtttest.WriteConfig(t, dataDir))
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	n := 0
	for {
		e, ok := bob.Inbox.Wait(2 * time.Second)
		if !ok {
			return n
		}
		if want := fmt.Sprintf("m%d", n); e.Str("ct") != want {
			t.Fatalf("restored message %d is %q, want %q (a gap or a reorder)", n, e.Str("ct"), want)
		}
		n++
	}
}

// A backup taken from a running broker while a client keeps sending holds
// every message acknowledged before it started, without gaps, and a broker
// started on it (the restore) delivers them. The running broker also keeps
// a second one off its data dir, refuses the backup to a user and does
// not serve it on the public port.
func TestBinary_BackupRunningBroker(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	p := mqtttest.StartProcess(t, cfg)

	// A second broker on the same data dir is told who has it.
	code, _, stderr := runCLI(t, "run", "--config", cfg)
	want := fmt.Sprintf("data dir %s is in use by another inboxmq (pid %d)", dataDir, p.PID())
	if code != 1 || !strings.Contains(stderr, want) {
		t.Fatalf("second broker: exit %d, stderr:\n%s\nwant exit 1 and %q", code, stderr, want)
	}

	// Only an admin may take a backup, and only on the admin listener.
	user := mqtttest.Token(t, "10001")
	code, _, stderr = runCLI(t, "backup", "--config", cfg, "--url", "http://"+p.Admin, "--token", user, "--to", filepath.Join(t.TempDir(), "b"))
	if code != 1 || !strings.Contains(stderr, "403") {
		t.Fatalf("backup with a user token: exit %d, stderr %s; want a 403 refusal", code, stderr)
	}
	post := func(addr string, auth func(*http.Request)) int {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/api/v1/admin/backup", nil)
		if err != nil {
			t.Fatal(err)
		}
		auth(req)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	// A service account (the app's back-end) may send notices, not read
	// every message.
	if code := post(p.Admin, func(r *http.Request) { r.SetBasicAuth(mqtttest.ServiceName, mqtttest.ServicePassword) }); code != http.StatusForbidden {
		t.Fatalf("backup by a service account: %d, want 403", code)
	}
	admin := mqtttest.TokenWith(t, auth.Claims{UID: "ops", Role: acl.RoleAdmin, TTL: time.Hour})
	if code := post(p.HTTP, func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+admin) }); code != http.StatusNotFound {
		t.Fatalf("backup on the public port: %d, want 404", code)
	}

	offlineInbox(t, p.MQTTAddr)
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", user, mqtttest.V3Options{Clean: true})
	var acked atomic.Int64
	stop, busy := make(chan struct{}), make(chan struct{})
	var once sync.Once
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(busy) })
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if err := alice.Pub("im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i)); err != nil {
				t.Errorf("publish m%d: %v", i, err)
				return
			}
			acked.Store(int64(i + 1))
			if i == 100 {
				once.Do(func() { close(busy) })
			}
			if i > 100 {
				// Paced, not to stop: the backup must run beside writes,
				// and the restore need not replay thousands of them.
				time.Sleep(5 * time.Millisecond)
			}
		}
	}()
	<-busy
	before := acked.Load()
	backupDir := filepath.Join(t.TempDir(), "backup")
	// No --token: the command signs a short-lived admin token with the
	// config's secret.
	code, stdout, stderr := runCLI(t, "backup", "--config", cfg, "--url", "http://"+p.Admin, "--to", backupDir)
	close(stop)
	wg.Wait()
	if code != 0 || !strings.Contains(stdout, "running broker") {
		t.Fatalf("backup: exit %d\nstdout: %s\nstderr: %s\nbroker log:\n%s", code, stdout, stderr, p.Log())
	}
	total := acked.Load()
	if !strings.Contains(p.Log(), `msg="backup sent" by=inboxmq-backup`) {
		t.Errorf("the broker did not log the backup:\n%s", p.Log())
	}
	if left, _ := filepath.Glob(filepath.Join(dataDir, ".backup-*")); len(left) != 0 {
		t.Errorf("checkpoint left in the data dir: %v", left)
	}

	got := restoredMessages(t, backupDir)
	if int64(got) < before || int64(got) > total {
		t.Fatalf("restored backup holds %d messages; %d were acknowledged before the backup and %d in all", got, before, total)
	}
	t.Logf("acknowledged before the backup: %d, in the backup: %d, in all: %d (%s)", before, got, total, strings.TrimSpace(stdout))
}

// With no broker running, backup copies the store's files; the copy starts
// a broker that delivers everything, and an existing target is refused.
func TestBinary_BackupStoppedBroker(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	p := mqtttest.StartProcess(t, cfg)
	offlineInbox(t, p.MQTTAddr)
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	const n = 30
	for i := range n {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
	}
	if code := p.Stop(t, 15*time.Second); code != 0 {
		t.Fatalf("stop: exit %d", code)
	}

	backupDir := filepath.Join(t.TempDir(), "backup")
	code, stdout, stderr := runCLI(t, "backup", "--config", cfg, "--to", backupDir)
	if code != 0 || !strings.Contains(stdout, "stopped broker") {
		t.Fatalf("backup: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if _, err := os.Stat(filepath.Join(dataDir, "inboxmq.pid")); !os.IsNotExist(err) {
		t.Errorf("the backup left a pid file in the data dir: %v", err)
	}
	code, _, stderr = runCLI(t, "backup", "--config", cfg, "--to", backupDir)
	if code != 1 || !strings.Contains(stderr, "already exists") {
		t.Fatalf("backup over an existing dir: exit %d, stderr %s", code, stderr)
	}
	if got := restoredMessages(t, backupDir); got != n {
		t.Fatalf("restored backup holds %d messages, want %d", got, n)
	}
}
