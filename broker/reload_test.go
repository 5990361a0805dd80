package broker_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// webhook is a back-end's webhook endpoint that checks signatures and
// records the types of the events it took.
type webhook struct {
	srv    *httptest.Server
	secret string
	mu     sync.Mutex
	types  []string
	badSig int
}

func newWebhook(t *testing.T) *webhook {
	t.Helper()
	h := &webhook{secret: "reload-webhook-secret-0123456789"}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !events.VerifySignature([]byte(h.secret), body, r.Header.Get(events.HeaderSignature)) {
			h.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.types = append(h.types, r.Header.Get(events.HeaderEvent))
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// wait waits until an event of type typ arrived.
func (h *webhook) wait(t *testing.T, typ string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		h.mu.Lock()
		got, bad := slices.Contains(h.types, typ), h.badSig
		h.mu.Unlock()
		if got {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no %q event at the webhook (%d with a bad signature)", typ, bad)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// devToken asks the web page's dev login for a token and returns the status.
func devToken(t *testing.T, b *broker.Broker) int {
	t.Helper()
	resp, err := http.Post("http://"+b.HTTPAddr()+"/dev/token", "application/json", strings.NewReader(`{"uid":"10001"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// A reload applies every section it can to the running broker (the dev
// login, a new webhook sink, the WebSocket origins, push settings) and
// names, in one log line and in its report, every changed key that needs
// a restart; a second reload of the same file names them again.
func TestReload_AppliesSectionsAndNamesRestartKeys(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Log.Level = "info"
	cfg.Web.Enabled, cfg.Web.DevLogin = true, true
	cfg.Listeners.WebSocket.AllowedOrigins = []string{"http://old.example"}
	b, logs := mqtttest.StartLogged(t, cfg)
	if status := devToken(t, b); status != http.StatusOK {
		t.Fatalf("dev login before the reload: %d", status)
	}
	if !mqtttest.WSOriginAccepted(t, b.WebSocketAddr(), "http://old.example") || mqtttest.WSOriginAccepted(t, b.WebSocketAddr(), "http://new.example") {
		t.Fatal("origins before the reload not as configured")
	}

	if _, err := mqtttest.ConnectV3(b.MQTTAddr(), "", "", mqtttest.V3Options{Clean: true}); err == nil {
		t.Fatal("an anonymous login accepted before the reload allows it")
	}

	hook := newWebhook(t)
	next := cfg
	next.Auth.Anonymous = true
	next.Web.DevLogin = false
	next.Events.Webhook.URL, next.Events.Webhook.Secret = hook.srv.URL, hook.secret
	next.Push.After = 5 * time.Minute
	next.Inbox.EditWindow = time.Hour
	next.Listeners.WebSocket.AllowedOrigins = []string{"http://new.example"}
	next.Listeners.MQTT.Address = "127.0.0.1:1"  // needs a restart
	next.NodeID = cfg.NodeID + 1                 // needs a restart
	next.MQTT.MaximumKeepalive = 2 * time.Minute // needs a restart
	wantApplied := []string{"auth.anonymous", "events.webhook.secret", "events.webhook.url", "inbox.edit_window",
		"listeners.websocket.allowed_origins", "push.after", "web.dev_login"}
	wantRestart := []string{"listeners.mqtt.address", "mqtt.maximum_keepalive", "node_id"}
	for round := 1; round <= 2; round++ {
		rep, err := b.Reload(next)
		if err != nil {
			t.Fatal(err)
		}
		if round == 1 && !slices.Equal(rep.Applied, wantApplied) {
			t.Errorf("applied %v, want %v", rep.Applied, wantApplied)
		}
		if round == 2 && len(rep.Applied) != 0 {
			t.Errorf("round 2 applied %v again: nothing changed since round 1", rep.Applied)
		}
		if !slices.Equal(rep.Restart, wantRestart) {
			t.Errorf("round %d: restart %v, want %v", round, rep.Restart, wantRestart)
		}
		// The standing warning comes with every reload, not the first only.
		if !slices.ContainsFunc(rep.Notices, func(n string) bool { return strings.HasPrefix(n, "auth.anonymous is on") }) {
			t.Errorf("round %d: notices %q lack auth.anonymous", round, rep.Notices)
		}
		line := logs.Wait(t, 5*time.Second, "configuration changes not applied")
		for _, key := range wantRestart {
			if !strings.Contains(line, key) {
				t.Errorf("round %d: %q not named in %q", round, key, line)
			}
		}
		logs.Reset()
	}

	if status := devToken(t, b); status != http.StatusNotFound {
		t.Errorf("dev login after turning it off: %d, want 404", status)
	}
	if mqtttest.WSOriginAccepted(t, b.WebSocketAddr(), "http://old.example") || !mqtttest.WSOriginAccepted(t, b.WebSocketAddr(), "http://new.example") {
		t.Error("origins after the reload not the new ones")
	}
	if _, err := mqtttest.ConnectV3(b.MQTTAddr(), "", "", mqtttest.V3Options{Clean: true}); err != nil {
		t.Errorf("an anonymous login refused after the reload allowed it: %v", err)
	}
	mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Clean: true})
	hook.wait(t, events.TypeLogin) // the sink added by the reload gets events
}

// An invalid configuration changes nothing: the error says why, and the
// running settings stay.
func TestReload_InvalidChangesNothing(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Web.Enabled, cfg.Web.DevLogin = true, true
	b := mqtttest.Start(t, cfg)
	bad := cfg
	bad.Web.DevLogin = false
	bad.Events.Webhook.URL = "ftp://nowhere" // invalid: not http(s)
	if _, err := b.Reload(bad); err == nil || !strings.Contains(err.Error(), "events.webhook.url") {
		t.Fatalf("err = %v, want the invalid key named", err)
	}
	if status := devToken(t, b); status != http.StatusOK {
		t.Fatalf("dev login after a refused reload: %d, want 200 (unchanged)", status)
	}
}

// Requests served while reloads flip the dev login get the old setting or
// the new one, never an error; the race detector watches the swaps.
func TestReload_ConcurrentRequestsSeeOldOrNew(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Web.Enabled = true
	b := mqtttest.Start(t, cfg)
	var stop atomic.Bool
	var wg sync.WaitGroup
	bad := make(chan int, 1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for !stop.Load() {
			resp, err := http.Post("http://"+b.HTTPAddr()+"/dev/token", "application/json", strings.NewReader(`{"uid":"10001"}`))
			if err != nil {
				continue
			}
			var body map[string]any
			_ = json.NewDecoder(resp.Body).Decode(&body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
				select {
				case bad <- resp.StatusCode:
				default:
				}
			}
		}
	}()
	next := cfg
	for i := range 6 {
		next.Web.DevLogin = i%2 == 0
		next.Limits.MaxSubscriptions = 10 + i
		if _, err := b.Reload(next); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	select {
	case status := <-bad:
		t.Fatalf("a request during the reloads got %d", status)
	default:
	}
}
