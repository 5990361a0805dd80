package events

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// openStore opens a real embedded store in dir (the outbox's state).
func openStore(t *testing.T, dir string) *pebblestore.Store {
	t.Helper()
	s, err := pebblestore.Open(filepath.Join(dir, "inbox"), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// downReceiver is a webhook endpoint that refuses until accept is set, and
// records each attempt's delivery id and each accepted event.
type downReceiver struct {
	srv    *httptest.Server
	accept atomic.Bool

	mu       sync.Mutex
	attempts map[string]int       // delivery id -> attempts
	accepted map[string]time.Time // delivery id -> first acceptance
	bodies   map[string]map[string]any
}

func newDownReceiver(t *testing.T) *downReceiver {
	r := &downReceiver{attempts: map[string]int{}, accepted: map[string]time.Time{}, bodies: map[string]map[string]any{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		id := req.Header.Get(HeaderDelivery)
		r.mu.Lock()
		defer r.mu.Unlock()
		r.attempts[id]++
		if !r.accept.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil || m["id"] != id {
			http.Error(w, "body without its delivery id", http.StatusBadRequest)
			return
		}
		if _, ok := r.accepted[id]; !ok {
			r.accepted[id] = time.Now()
			r.bodies[id] = m
		}
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *downReceiver) snapshot() (attempts map[string]int, accepted map[string]time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	attempts, accepted = map[string]int{}, map[string]time.Time{}
	for k, v := range r.attempts {
		attempts[k] = v
	}
	for k, v := range r.accepted {
		accepted[k] = v
	}
	return attempts, accepted
}

func webhookTo(t *testing.T, r *downReceiver) *WebhookSink {
	t.Helper()
	w, err := NewWebhookSink(WebhookOptions{URL: r.srv.URL, Secret: "0123456789abcdef0123", Retries: -1, Log: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func fastOutbox(t *testing.T, store OutboxStore, sinks []Sink, maxAge time.Duration) *Outbox {
	t.Helper()
	o, err := NewOutbox(OutboxOptions{
		Store: store, Sinks: sinks, MaxAge: maxAge,
		RetryMin: 20 * time.Millisecond, RetryMax: 200 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Lease: 300 * time.Millisecond, Log: testLog(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	return o
}

// A downReceiver that refuses for a while and then accepts gets every event,
// each with the delivery id it carried on every attempt.
func TestOutbox_ReceiverDownThenUp(t *testing.T) {
	store := openStore(t, t.TempDir())
	r := newDownReceiver(t)
	o := fastOutbox(t, store, []Sink{webhookTo(t, r)}, time.Hour)
	defer o.Close(context.Background())
	for i := range 20 {
		o.Emit(Event{Type: TypePush, Data: map[string]any{"uid": "10021", "n": i}})
	}
	waitFor(t, 5*time.Second, "retries while the downReceiver is down", func() bool {
		return o.Stats().Sinks[0].Retried >= 5
	})
	// Down: one attempt per backoff interval, not one per waiting event.
	attempts, _ := r.snapshot()
	total := 0
	for _, n := range attempts {
		total += n
	}
	if retried := o.Stats().Sinks[0].Retried; uint64(total) > retried+2 {
		t.Errorf("%d attempts for %d failures while the receiver was down: want one probe per backoff", total, retried)
	}
	r.accept.Store(true)
	waitFor(t, 10*time.Second, "all 20 accepted", func() bool {
		_, acc := r.snapshot()
		return len(acc) == 20
	})
	waitFor(t, 5*time.Second, "the outbox empties", func() bool {
		n, _ := o.Backlog(context.Background())
		return n["webhook"] == 0
	})
	st := o.Stats().Sinks[0]
	if st.Sent != 20 || st.GivenUp != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// An event still undelivered at its maximum age is given up, counted and
// never sent after it.
func TestOutbox_NoneAfterMaxAge(t *testing.T) {
	store := openStore(t, t.TempDir())
	r := newDownReceiver(t)
	var gaveUp atomic.Int64
	o, err := NewOutbox(OutboxOptions{
		Store: store, Sinks: []Sink{webhookTo(t, r)}, MaxAge: 400 * time.Millisecond,
		RetryMin: 20 * time.Millisecond, RetryMax: 50 * time.Millisecond, PollInterval: 20 * time.Millisecond,
		Log: quiet(), OnGiveUp: func(string) { gaveUp.Add(1) },
	})
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close(context.Background())
	emitted := time.Now()
	for range 3 {
		o.Emit(Event{Type: TypeLogin, Data: map[string]any{"uid": "10021"}})
	}
	waitFor(t, 5*time.Second, "all 3 given up", func() bool { return gaveUp.Load() == 3 })
	r.accept.Store(true)
	time.Sleep(300 * time.Millisecond)
	if _, acc := r.snapshot(); len(acc) != 0 {
		t.Fatalf("%d events delivered after their max age", len(acc))
	}
	if n, _ := o.Backlog(context.Background()); n["webhook"] != 0 {
		t.Fatalf("backlog %v after giving up", n)
	}
	if time.Since(emitted) < 400*time.Millisecond {
		t.Fatal("given up before the max age")
	}
}

// Events survive a restart: a new outbox on the same store delivers what
// the old one could not, with the same delivery ids.
func TestOutbox_SurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	r := newDownReceiver(t)
	store, err := pebblestore.Open(filepath.Join(dir, "inbox"), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := fastOutbox(t, store, []Sink{webhookTo(t, r)}, time.Hour)
	for i := range 10 {
		o.Emit(Event{Type: TypePush, Data: map[string]any{"uid": "10021", "n": i}})
	}
	waitFor(t, 5*time.Second, "attempts while down", func() bool { return o.Stats().Sinks[0].Retried >= 1 })
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	before, _ := r.snapshot()

	r.accept.Store(true)
	o2 := fastOutbox(t, openStore(t, dir), []Sink{webhookTo(t, r)}, time.Hour)
	defer o2.Close(context.Background())
	waitFor(t, 10*time.Second, "all 10 after the restart", func() bool {
		_, acc := r.snapshot()
		return len(acc) == 10
	})
	for id := range before {
		if _, acc := r.snapshot(); acc[id].IsZero() {
			t.Errorf("event %s tried before the restart was delivered under another id", id)
		}
	}
}

// Sinks that do not want a type get none; invalid events are refused.
func TestOutbox_FilterAndInvalid(t *testing.T) {
	store := openStore(t, t.TempDir())
	all := &memSink{name: "all"}
	only := filterSink{&memSink{name: "pushes", wants: func(t string) bool { return t == TypePush }}}
	o := fastOutbox(t, store, []Sink{all, only}, time.Hour)
	o.Emit(Event{Type: TypePush, Data: map[string]any{"uid": "1"}})
	o.Emit(Event{Type: TypeLogin, Data: map[string]any{"uid": "1"}})
	o.Emit(Event{Type: TypeLogin, Data: map[string]any{"id": "reserved"}})
	o.Emit(Event{})
	waitFor(t, 5*time.Second, "deliveries", func() bool { return all.count() == 2 && only.count() == 1 })
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st := o.Stats(); st.Invalid != 2 {
		t.Fatalf("invalid = %d, want 2", st.Invalid)
	}
	if got := only.got(); got[0].Type != TypePush {
		t.Fatalf("filtered sink got %v", got)
	}
	if _, err := NewOutbox(OutboxOptions{Store: store, Sinks: []Sink{&memSink{name: "x"}, &memSink{name: "x"}}}); err == nil {
		t.Fatal("two sinks with one name accepted")
	}
}

// The Redis Stream sink appends each event with its delivery id, and a
// consumer that was away reads it afterwards.
func TestStreamSink(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	s, err := NewStreamSink(StreamOptions{Client: c, Key: "t:events", MaxLen: 10})
	if err != nil {
		t.Fatal(err)
	}
	store := openStore(t, t.TempDir())
	o := fastOutbox(t, store, []Sink{s}, time.Hour)
	for i := range 25 {
		o.Emit(Event{Type: TypePush, Data: map[string]any{"uid": "10021", "n": i}})
	}
	waitFor(t, 5*time.Second, "all sent", func() bool { return o.Stats().Sinks[0].Sent == 25 })
	if err := o.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	entries, err := c.XRange(context.Background(), "t:events", "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	// MAXLEN ~ 10 trims by whole nodes: at least the newest 10 are kept.
	if len(entries) < 10 || len(entries) > 25 {
		t.Fatalf("stream holds %d entries", len(entries))
	}
	last := entries[len(entries)-1].Values
	var body map[string]any
	if err := json.Unmarshal([]byte(fmt.Sprint(last["body"])), &body); err != nil || body["id"] != last["id"] || last["event"] != TypePush {
		t.Fatalf("last entry = %v (%v)", last, err)
	}
	if _, err := NewStreamSink(StreamOptions{Client: c}); err == nil {
		t.Fatal("a stream sink without a key was accepted")
	}
}

// testLog sends the outbox's log lines to the test's log.
func testLog(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
