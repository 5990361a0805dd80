package main

import (
	"bytes"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// These tests run the real inboxmq binary as users would.

func TestBinary_Help(t *testing.T) {
	bin := mqtttest.Binary(t)
	for _, args := range [][]string{{"--help"}, {"help"}, {"token", "--help"}, {"run", "-h"}} {
		// Help asked for goes to stdout (so it can be paged) with exit 0.
		var stderr bytes.Buffer
		cmd := exec.Command(bin, args...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil || stderr.Len() > 0 {
			t.Fatalf("%v: %v, stderr %q\n%s", args, err, stderr.String(), out)
		}
		if !bytes.Contains(out, []byte("inboxmq")) || !bytes.Contains(out, []byte("--")) && args[0] != "help" {
			t.Fatalf("%v: unhelpful output:\n%s", args, out)
		}
	}
	out, _ := exec.Command(bin, "help").CombinedOutput()
	for _, want := range []string{"run", "token", "hash-password", "check-config", "INBOXMQ_JWT_SECRET", "inbox/{uid}"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("help does not mention %q", want)
		}
	}
	cmd := exec.Command(bin, "frobnicate")
	if err := cmd.Run(); cmd.ProcessState.ExitCode() != 2 {
		t.Fatalf("unknown command: exit %d (%v), want 2", cmd.ProcessState.ExitCode(), err)
	}
}

// The token command signs with the config's secret; the broker accepts it.
// hash-password reads a piped password line; token refuses a static
// account's name, whose logins are checked against its password.
func TestBinary_HashPasswordAndStaticNames(t *testing.T) {
	bin := mqtttest.Binary(t)
	cmd := exec.Command(bin, "hash-password")
	cmd.Stdin = strings.NewReader("s3cret\n")
	out, err := cmd.Output()
	if err != nil || !strings.HasPrefix(string(out), "$2") || strings.Contains(string(out), "s3cret") {
		t.Fatalf("hash-password: %v %q", err, out)
	}
	cfg := mqtttest.WriteConfig(t, t.TempDir())
	var stderr bytes.Buffer
	cmd = exec.Command(bin, "token", "--config", cfg, "--uid", mqtttest.AdminName)
	cmd.Stderr = &stderr
	if out, err := cmd.Output(); err == nil || len(out) > 0 || !strings.Contains(stderr.String(), "static account") {
		t.Fatalf("token for the static account %q: %v, stdout %q, stderr %q", mqtttest.AdminName, err, out, stderr.String())
	}
}

func TestBinary_TokenAndHealthz(t *testing.T) {
	cfg := mqtttest.WriteConfig(t, t.TempDir())
	p := mqtttest.StartProcess(t, cfg)
	out, err := exec.Command(mqtttest.Binary(t), "token", "--config", cfg, "--uid", "10001", "--nickname", "张三", "--ttl", "1h").Output()
	if err != nil {
		t.Fatal(err)
	}
	tok := strings.TrimSpace(string(out))
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", tok, mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"signed by the CLI"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("nickname") != "张三" || e.Str("ct") != "signed by the CLI" {
		t.Fatalf("got %s", e.Raw)
	}
	resp, err := http.Get("http://" + p.HTTP + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/healthz: %d", resp.StatusCode)
	}
}

// Offline messages PUBACKed before a SIGKILL are all delivered, in order,
// after the restart.
func TestBinary_OfflineMessagesSurviveSIGKILL(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	p := mqtttest.StartProcess(t, cfg)
	tokA, tokB := mqtttest.Token(t, "10001"), mqtttest.Token(t, "10021")

	bob, err := mqtttest.ConnectV3(p.MQTTAddr, "10021", tokB, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatal(err)
	}
	bob.Disconnect(100)
	alice, err := mqtttest.ConnectV3(p.MQTTAddr, "10001", tokA, mqtttest.V3Options{Clean: true})
	if err != nil {
		t.Fatal(err)
	}
	const n = 1000
	for i := 0; i < n; i++ {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
	}
	p.Kill(t) // every one of them was PUBACKed: none may be lost

	p2 := mqtttest.StartProcess(t, cfg)
	bob2 := mqtttest.MustV3(t, p2.MQTTAddr, "10021", tokB, mqtttest.V3Options{Subscribe: true})
	got := bob2.Inbox.Collect(t, n, 60*time.Second)
	prev := uint64(0)
	for i, e := range got {
		if e.Str("ct") != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d out of order: %s", i, e.Raw)
		}
		id, _ := strconv.ParseUint(e.Str("msgid"), 10, 64)
		if id <= prev {
			t.Fatalf("message %d: msgid %d not above %d", i, id, prev)
		}
		prev = id
	}
	bob2.Inbox.None(t, 300*time.Millisecond)
}

// SIGTERM shuts down gracefully: clients are told, the process exits 0,
// and the store reopens.
func TestBinary_GracefulShutdown(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	p := mqtttest.StartProcess(t, cfg)
	c := mqtttest.MustV5(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V5Options{Subscribe: true})
	if code := p.Stop(t, 15*time.Second); code != 0 {
		t.Fatalf("exit code %d:\n%s", code, p.Log())
	}
	select {
	case d := <-c.Disconnects:
		if d.ReasonCode != 0x8B {
			t.Fatalf("disconnect reason %#x, want 0x8B (server shutting down)", d.ReasonCode)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("client was not told about the shutdown")
	}
	if !strings.Contains(p.Log(), "inboxmq stopped") {
		t.Fatalf("no shutdown log line:\n%s", p.Log())
	}
	mqtttest.StartProcess(t, cfg) // the store reopens cleanly
}

// Signals are handled from the moment "inboxmq started" is logged: the
// handlers used to be installed after that line, and a SIGHUP sent on seeing
// it killed the process about two times in three.
func TestBinary_SIGHUPRightAfterStartIsHandled(t *testing.T) {
	cfg := mqtttest.WriteConfig(t, t.TempDir())
	for range 5 {
		p := mqtttest.StartProcess(t, cfg) // returns on the "inboxmq started" line
		if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitForLog(t, p, "configuration reloaded")
		if code := p.Stop(t, 15*time.Second); code != 0 {
			t.Fatalf("exit code %d:\n%s", code, p.Log())
		}
	}
}

// waitForLog waits until the process logs want, failing if it ends first.
func waitForLog(t *testing.T, p *mqtttest.Process, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.Log(), want) {
		if state, ended := p.Exited(); ended {
			t.Fatalf("the broker ended (%s) before logging %q:\n%s", state, want, p.Log())
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q in the log:\n%s", want, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SIGHUP reloads accounts and the token secret without dropping anyone.
func TestBinary_SIGHUPReloadsCredentials(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	p := mqtttest.StartProcess(t, cfg)
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	// New config: another secret, and the admin account removed.
	newSecret := "a-completely-different-secret-0123456789"
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(data), mqtttest.Secret, newSecret, 1)
	text = regexp.MustCompile(`(?m)^    - \{name: admin,.*\n`).ReplaceAllString(text, "")
	if err := os.WriteFile(cfg, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, "configuration reloaded")
	if _, err := mqtttest.ConnectV3(p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true}); err == nil {
		t.Fatal("token signed with the old secret still accepted")
	}
	if _, err := mqtttest.ConnectV3(p.MQTTAddr, mqtttest.AdminName, mqtttest.AdminPassword, mqtttest.V3Options{Clean: true}); err == nil {
		t.Fatal("removed account still accepted")
	}
	out, err := exec.Command(mqtttest.Binary(t), "token", "--config", cfg, "--uid", "10001").Output()
	if err != nil {
		t.Fatal(err)
	}
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", strings.TrimSpace(string(out)), mqtttest.V3Options{Clean: true})
	// bob, connected before the reload, is still there.
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"after reload"}`)
	if e := bob.Inbox.Next(t, 10*time.Second); e.Str("ct") != "after reload" {
		t.Fatalf("got %s", e.Raw)
	}
}
