package main

import (
	"fmt"
	"net/http"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// reloadConfig writes, at path, a test config over dataDir with a web
// page, these allowed WebSocket origins and MQTT address, and extra
// lines.
func reloadConfig(t *testing.T, path, dataDir, mqttAddr, origin string, extra ...string) {
	t.Helper()
	listeners := fmt.Sprintf(`listeners:
  mqtt: {address: %q}
  websocket: {address: "127.0.0.1:0", path: /mqtt, allowed_origins: [%q]}
  http: {address: "127.0.0.1:0"}
  admin: {address: "127.0.0.1:0"}`, mqttAddr, origin)
	data, err := os.ReadFile(mqtttest.WriteConfig(t, dataDir, append([]string{listeners}, extra...)...))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// postStatus POSTs body to url and returns the status.
func postStatus(t *testing.T, url, body string) int {
	t.Helper()
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// An operator edits the running broker's config file (a webhook sink
// added, push.after set, the dev login turned off, another WebSocket
// origin, another MQTT address) and runs `inboxmq reload`: it prints what
// the broker applied and the key that needs a restart, the changes take
// effect at once, and a second reload (and a SIGHUP, the same code path)
// names that key again. An invalid file is refused, with its reason and
// exit 1, and changes nothing.
func TestBinary_ReloadCommand(t *testing.T) {
	dataDir := t.TempDir()
	cfg := mqtttest.WriteConfig(t, dataDir)
	reloadConfig(t, cfg, dataDir, "127.0.0.1:0", "http://old.example", "web: {enabled: true, dev_login: true}")
	p := mqtttest.StartProcess(t, cfg)
	devToken := "http://" + p.HTTP + "/dev/token"
	if s := postStatus(t, devToken, `{"uid":"10001"}`); s != http.StatusOK {
		t.Fatalf("dev login before the reload: %d", s)
	}
	if !mqtttest.WSOriginAccepted(t, p.WSAddr, "http://old.example") || mqtttest.WSOriginAccepted(t, p.WSAddr, "http://new.example") {
		t.Fatal("WebSocket origins before the reload are not the configured ones")
	}

	hook := newHookReceiver(t)
	hook.accept.Store(true)
	reloadConfig(t, cfg, dataDir, "127.0.0.1:1", "http://new.example",
		"web: {enabled: true, dev_login: false}",
		"push: {after: 1s, check_interval: 100ms}",
		fmt.Sprintf("events: {webhook: {url: %q, secret: %q, timeout: 2s}}", hook.srv.URL, hook.secret))
	code, out, errOut := runCLI(t, "reload", "--config", cfg, "--admin", p.Admin)
	if code != 0 {
		t.Fatalf("reload: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	for _, want := range []string{
		"reloaded " + cfg,
		"applied: events.webhook.secret, events.webhook.timeout, events.webhook.url, " +
			"listeners.websocket.allowed_origins, push.after, push.check_interval, web.dev_login\n",
		"needs a restart: listeners.mqtt.address\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("reload output lacks %q:\n%s", want, out)
		}
	}

	if s := postStatus(t, devToken, `{"uid":"10001"}`); s != http.StatusNotFound {
		t.Errorf("dev login after turning it off: %d, want 404", s)
	}
	if mqtttest.WSOriginAccepted(t, p.WSAddr, "http://old.example") || !mqtttest.WSOriginAccepted(t, p.WSAddr, "http://new.example") {
		t.Error("WebSocket origins after the reload are not the new ones")
	}
	// The webhook added by the reload gets events, push events included:
	// bob is offline and a message waits for him past push.after.
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	bob.Disconnect(250)
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	alice.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"after the reload"}`)
	deadline := time.Now().Add(30 * time.Second)
	for len(hook.byType("login")) == 0 || len(hook.byType("push")) == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("webhook got %d login and %d push events, want both", len(hook.byType("login")), len(hook.byType("push")))
		}
		time.Sleep(50 * time.Millisecond)
	}

	// Again, unchanged: the key that needs a restart is named again.
	code, out, errOut = runCLI(t, "reload", "--config", cfg, "--admin", p.Admin)
	if code != 0 || !strings.Contains(out, "applied: (none)\n") || !strings.Contains(out, "needs a restart: listeners.mqtt.address\n") {
		t.Fatalf("second reload: exit %d\nstdout %s\nstderr %s", code, out, errOut)
	}
	// SIGHUP does the same and logs the same line.
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	const restartLine = `msg="configuration changes not applied: they need a restart" keys=listeners.mqtt.address`
	deadline = time.Now().Add(10 * time.Second)
	for strings.Count(p.Log(), restartLine) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("%d lines %q after two reloads and a SIGHUP, want 3:\n%s", strings.Count(p.Log(), restartLine), restartLine, p.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}

	// An invalid file: refused with the key and what was given, nothing changes.
	data, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	invalid := strings.Replace(string(data), "web: {enabled: true, dev_login: false}", "web: {enabled: true, dev_login: true}\ninbox: {retention: 7}", 1)
	if err := os.WriteFile(cfg, []byte(invalid), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errOut = runCLI(t, "reload", "--config", cfg, "--admin", p.Admin)
	if code != 1 || !strings.Contains(errOut, "'inbox.retention' 7: a duration needs a unit") || !strings.Contains(errOut, "keeps its configuration") {
		t.Fatalf("invalid file: exit %d, want 1 naming the key\nstdout %s\nstderr %s", code, out, errOut)
	}
	// SIGHUP reads the same file: the broker says why it keeps its configuration.
	if err := p.Cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitForLog(t, p, `msg="configuration not reloaded; the running configuration stays"`)
	if !strings.Contains(p.Log(), "inbox.retention") {
		t.Errorf("the refusal in the log does not name the key:\n%s", p.Log())
	}
	if s := postStatus(t, devToken, `{"uid":"10001"}`); s != http.StatusNotFound {
		t.Errorf("dev login after a refused reload: %d, want 404 (unchanged)", s)
	}
}
