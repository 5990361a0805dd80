package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// hookReceiver is the back-end's webhook endpoint: it refuses (503) until
// accept is set, checks every signature, and records each event by its
// delivery id.
type hookReceiver struct {
	srv    *httptest.Server
	secret string
	accept atomic.Bool

	mu       sync.Mutex
	tried    map[string]int            // delivery id -> attempts
	accepted map[string]map[string]any // delivery id -> event body
	badSig   int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	r := &hookReceiver{secret: "webhook-secret-0123456789", tried: map[string]int{}, accepted: map[string]map[string]any{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if !events.VerifySignature([]byte(r.secret), body, req.Header.Get(events.HeaderSignature)) {
			r.badSig++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		id := req.Header.Get(events.HeaderDelivery)
		r.tried[id]++
		if !r.accept.Load() {
			http.Error(w, "maintenance", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		r.accepted[id] = m
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// backlog reads inboxmq_events_backlog{sink="webhook"} from /metrics on
// the admin listener.
func backlog(t *testing.T, adminAddr string) int {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics on the admin listener: %d %s", resp.StatusCode, body)
	}
	m := regexp.MustCompile(`(?m)^inboxmq_events_backlog\{sink="webhook"\} (\d+)`).FindSubmatch(body)
	if m == nil {
		return 0
	}
	v, _ := strconv.Atoi(string(m[1]))
	return v
}

// byType returns the accepted events of one type, by delivery id.
func (r *hookReceiver) byType(typ string) map[string]map[string]any {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[string]any{}
	for id, m := range r.accepted {
		if m["event"] == typ {
			out[id] = m
		}
	}
	return out
}

func (r *hookReceiver) triedIDs() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for k, v := range r.tried {
		out[k] = v
	}
	return out
}

// Push events outlive a receiver outage and a SIGKILL: one push per
// unacknowledged message, with the badge count, delivered once the
// receiver is back, under the delivery ids tried before the kill; and a
// push_cancel once the recipient's device acknowledges them.
func TestBinary_EventsOutliveOutageAndKill(t *testing.T) {
	r := newHookReceiver(t)
	cfg := mqtttest.WriteConfig(t, t.TempDir(),
		"push: {after: 1s, check_interval: 100ms}",
		"events:",
		"  max_age: 1h",
		"  retry_max_interval: 1s",
		fmt.Sprintf("  webhook: {url: %q, secret: %q, timeout: 2s, retries: -1}", r.srv.URL, r.secret),
	)
	p := mqtttest.StartProcess(t, cfg)
	// Bob's device has a persistent session and is offline.
	bob := mqtttest.MustV3(t, p.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	bob.Disconnect(250)
	alice := mqtttest.MustV3(t, p.MQTTAddr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Clean: true})
	const n = 5
	for i := range n {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":10021,"msg":"m%d"}`, i))
	}
	// The receiver is down: wait until the push for each message waits in
	// the store (with bob's login and logout and alice's login), then kill
	// the broker.
	deadline := time.Now().Add(30 * time.Second)
	for backlog(t, p.Admin) < n+3 {
		if time.Now().After(deadline) {
			t.Fatalf("backlog %v, want %d events waiting", backlog(t, p.Admin), n+3)
		}
		time.Sleep(50 * time.Millisecond)
	}
	before := r.triedIDs()
	p.Kill(t)

	r.accept.Store(true)
	p2 := mqtttest.StartProcess(t, cfg)
	var pushes map[string]map[string]any
	for deadline = time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if pushes = r.byType(events.TypePush); len(pushes) >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d push events after the restart, want %d", len(pushes), n)
		}
	}
	perMsg := map[any]int{}
	for id, m := range pushes {
		perMsg[m["msgid"]]++
		if m["uid"] != "10021" || m["unread"] == nil || m["id"] != id {
			t.Fatalf("push event %s = %v", id, m)
		}
	}
	if len(perMsg) != n {
		t.Fatalf("push events for %d messages, want one for each of %d: %v", len(perMsg), n, perMsg)
	}
	for msgid, k := range perMsg {
		if k != 1 {
			t.Fatalf("%d push events (distinct delivery ids) for message %v, want exactly one", k, msgid)
		}
	}
	if len(before) == 0 {
		t.Fatal("nothing was tried before the kill")
	}
	for deadline = time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		missing := 0
		r.mu.Lock()
		for id := range before {
			if _, ok := r.accepted[id]; !ok {
				missing++
			}
		}
		r.mu.Unlock()
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d events tried before the kill never arrived under their delivery ids", missing)
		}
	}
	if r.badSig > 0 {
		t.Fatalf("%d requests with a bad signature", r.badSig)
	}

	// Bob's device comes back and acknowledges: one push_cancel, badge 5
	// (delivered is not read: the unread count stays until a read mark).
	bob2 := mqtttest.MustV3(t, p2.MQTTAddr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{})
	bob2.Inbox.Collect(t, n, 30*time.Second)
	for deadline = time.Now().Add(30 * time.Second); len(r.byType(events.TypePushCancel)) == 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no push_cancel after the device acknowledged the pushed messages")
		}
	}
	for _, m := range r.byType(events.TypePushCancel) {
		if m["uid"] != "10021" || m["msgid"] == nil || fmt.Sprint(m["unread"]) != "5" {
			t.Fatalf("push_cancel = %v", m)
		}
	}
}
