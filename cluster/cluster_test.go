package cluster_test

import (
	"bytes"
	"context"
	"fmt"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/cluster"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/logbuf"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// wait bounds every wait for a signal to arrive. It is generous: a missed
// deadline means a lost signal, never a slow machine.
const wait = 20 * time.Second

// event is one call of the Local interface.
type event struct {
	Kind   string // wake, logout, kick
	UID    string
	At     time.Time
	Reason string // kick: the reason; ephemeral: the envelope
}

func (e event) String() string {
	if e.At.IsZero() {
		return fmt.Sprintf("%s(%s, %q)", e.Kind, e.UID, e.Reason)
	}
	return fmt.Sprintf("%s(%s, %d, %q)", e.Kind, e.UID, e.At.UnixNano(), e.Reason)
}

// recorder is a cluster.Local that records every call.
type recorder struct {
	mu      sync.Mutex
	events  []event
	wakeAll int
}

func (r *recorder) WakeLocal(uid string) { r.add(event{Kind: "wake", UID: uid}) }
func (r *recorder) WakeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.wakeAll++
}
func (r *recorder) LogoutOlder(uid string, at time.Time, reason string) {
	r.add(event{Kind: "logout", UID: uid, At: at, Reason: reason})
}
func (r *recorder) KickLocal(uid, reason string) {
	r.add(event{Kind: "kick", UID: uid, Reason: reason})
}
func (r *recorder) EphemeralLocal(uid string, envelope []byte) {
	r.add(event{Kind: "ephemeral", UID: uid, Reason: string(envelope)})
}

func (r *recorder) add(e event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, e)
}

// snapshot returns the events recorded so far, markers left out, and the
// number of WakeAll calls.
func (r *recorder) snapshot() ([]event, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []event
	for _, e := range r.events {
		if !strings.HasPrefix(e.UID, markerPrefix) {
			out = append(out, e)
		}
	}
	return out, r.wakeAll
}

func (r *recorder) has(e event) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.ContainsFunc(r.events, func(x event) bool { return x.String() == e.String() })
}

func (r *recorder) wakeAlls() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.wakeAll
}

// waitUntil polls cond until it holds or the deadline passes.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// markerPrefix starts the uids of the wakes tests send to order the
// signal stream: once a node saw a marker, it has handled every signal
// published before it on the channel (Redis delivers a channel's messages
// to a subscriber in publish order).
const markerPrefix = "marker-"

var markers atomic.Int64

// syncSignals sends a marker from one node and waits until every one of to saw
// it.
func syncSignals(t *testing.T, from *cluster.Node, to ...*recorder) {
	t.Helper()
	m := fmt.Sprintf("%s%d", markerPrefix, markers.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := from.Wake(ctx, []string{m}); err != nil {
		t.Fatalf("send marker: %v", err)
	}
	for _, r := range to {
		waitUntil(t, "marker "+m, func() bool { return r.has(event{Kind: "wake", UID: m}) })
	}
}

// logBuffer collects log output (internal/logbuf).
type logBuffer = logbuf.Buffer

// member is a node under test with its Local and its log.
type member struct {
	*cluster.Node
	local *recorder
	logs  *logBuffer
}

// join starts a node with its own client (nodes are separate processes)
// and closes both when the test ends.
func join(t *testing.T, srv *redistest.Server, prefix string, id int) *member {
	t.Helper()
	m := &member{local: &recorder{}, logs: &logBuffer{}}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n, err := cluster.Join(ctx, cluster.Options{
		Client: srv.Client(t), Prefix: prefix, NodeID: id, Local: m.local, Log: m.logs.Logger(),
	})
	if err != nil {
		t.Fatalf("join node %d: %v", id, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close node %d: %v", id, err)
		}
	})
	m.Node = n
	return m
}

var prefixes atomic.Int64

// newPrefix is a key prefix no other test uses.
func newPrefix() string { return fmt.Sprintf("ct%d:", prefixes.Add(1)) }

func TestSignals(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	at := time.Unix(1_700_000_000, 123_456_789) // nanoseconds must survive the trip
	tests := []struct {
		name string
		send func(ctx context.Context, n *cluster.Node) error
		want []event // what every other node sees, in order
	}{
		{
			name: "wake of one uid",
			send: func(ctx context.Context, n *cluster.Node) error { return n.Wake(ctx, []string{"10001"}) },
			want: []event{{Kind: "wake", UID: "10001"}},
		},
		{
			name: "wake of several uids",
			send: func(ctx context.Context, n *cluster.Node) error {
				return n.Wake(ctx, []string{"10001", "10002", "10003"})
			},
			want: []event{{Kind: "wake", UID: "10001"}, {Kind: "wake", UID: "10002"}, {Kind: "wake", UID: "10003"}},
		},
		{
			name: "wake of the broadcast log",
			send: func(ctx context.Context, n *cluster.Node) error {
				return n.Wake(ctx, []string{inbox.BroadcastInbox})
			},
			want: []event{{Kind: "wake", UID: inbox.BroadcastInbox}},
		},
		{
			name: "wake of no uid does nothing",
			send: func(ctx context.Context, n *cluster.Node) error { return n.Wake(ctx, nil) },
			want: nil,
		},
		{
			name: "login logs out older connections on the other nodes",
			send: func(ctx context.Context, n *cluster.Node) error { return n.LoggedIn(ctx, "10001", at) },
			want: []event{{Kind: "logout", UID: "10001", At: at, Reason: "logged in elsewhere"}},
		},
		{
			name: "kick with a reason",
			send: func(ctx context.Context, n *cluster.Node) error { return n.Kick(ctx, "10001", "banned by admin") },
			want: []event{{Kind: "kick", UID: "10001", Reason: "banned by admin"}},
		},
		{
			name: "kick without a reason",
			send: func(ctx context.Context, n *cluster.Node) error { return n.Kick(ctx, "10002", "") },
			want: []event{{Kind: "kick", UID: "10002"}},
		},
		{
			name: "ephemeral envelope reaches the other nodes unchanged",
			send: func(ctx context.Context, n *cluster.Node) error {
				return n.Ephemeral(ctx, "10021", []byte(`{"_method_":"Typing","action":"9","uid":"a\"b","ts":1}`))
			},
			want: []event{{Kind: "ephemeral", UID: "10021", Reason: `{"_method_":"Typing","action":"9","uid":"a\"b","ts":1}`}},
		},
		{
			name: "signals keep their order",
			send: func(ctx context.Context, n *cluster.Node) error {
				if err := n.LoggedIn(ctx, "10001", at); err != nil {
					return err
				}
				if err := n.Wake(ctx, []string{"10001"}); err != nil {
					return err
				}
				return n.Kick(ctx, "10001", "r")
			},
			want: []event{
				{Kind: "logout", UID: "10001", At: at, Reason: "logged in elsewhere"},
				{Kind: "wake", UID: "10001"},
				{Kind: "kick", UID: "10001", Reason: "r"},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := newPrefix()
			a := join(t, srv, prefix, 1)
			b := join(t, srv, prefix, 2)
			c := join(t, srv, prefix, 3)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := tt.send(ctx, a.Node); err != nil {
				t.Fatalf("send: %v", err)
			}
			// a's marker orders the stream for b and c; b's marker for a.
			syncSignals(t, a.Node, b.local, c.local)
			syncSignals(t, b.Node, a.local)
			for _, m := range []*member{b, c} {
				got, wakeAll := m.local.snapshot()
				if !slices.EqualFunc(got, tt.want, func(x, y event) bool { return x.String() == y.String() }) {
					t.Errorf("receiver got %v, want %v", got, tt.want)
				}
				if wakeAll != 0 {
					t.Errorf("receiver WakeAll called %d times without a gap", wakeAll)
				}
			}
			if got, wakeAll := a.local.snapshot(); len(got) != 0 || wakeAll != 0 {
				t.Errorf("the sender acted on its own signal: %v, WakeAll %d", got, wakeAll)
			}
		})
	}
}

// Nodes on another prefix share the Redis but not the signals.
func TestSignalsStayWithinPrefix(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	p1, p2 := newPrefix(), newPrefix()
	a := join(t, srv, p1, 1)
	b := join(t, srv, p1, 2)
	other := join(t, srv, p2, 2)
	otherPeer := join(t, srv, p2, 3)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := a.Wake(ctx, []string{"10001"}); err != nil {
		t.Fatal(err)
	}
	if err := a.Kick(ctx, "10001", "r"); err != nil {
		t.Fatal(err)
	}
	syncSignals(t, a.Node, b.local)
	// Redis handled a's signals before this marker: had other been
	// subscribed to them, they would be ahead of it on its connection.
	syncSignals(t, otherPeer.Node, other.local)
	if got, _ := b.local.snapshot(); len(got) != 2 {
		t.Fatalf("same-prefix node got %v, want the wake and the kick", got)
	}
	if got, _ := other.local.snapshot(); len(got) != 0 {
		t.Errorf("node on another prefix got %v", got)
	}
}

// Node is safe for concurrent use: signals sent from many goroutines all
// arrive.
func TestConcurrentSends(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	prefix := newPrefix()
	a := join(t, srv, prefix, 1)
	b := join(t, srv, prefix, 2)
	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			uid := fmt.Sprint(20000 + i)
			var err error
			switch i % 3 {
			case 0:
				err = a.Wake(ctx, []string{uid})
			case 1:
				err = a.LoggedIn(ctx, uid, time.Unix(0, int64(i)))
			default:
				err = a.Kick(ctx, uid, "r")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	syncSignals(t, a.Node, b.local)
	got, _ := b.local.snapshot()
	seen := map[string]bool{}
	for _, e := range got {
		seen[e.UID] = true
	}
	if len(got) != n || len(seen) != n {
		t.Fatalf("got %d signals for %d uids, want %d distinct", len(got), len(seen), n)
	}
}

func TestJoin(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	down := redistest.Start(t, redistest.Config{})
	downClient := down.Client(t)
	if err := down.Kill(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		opts    func() cluster.Options
		wantErr string // "" means Join succeeds
	}{
		{
			name:    "no client",
			opts:    func() cluster.Options { return cluster.Options{Local: &recorder{}} },
			wantErr: "Client and Local are required",
		},
		{
			name:    "no local",
			opts:    func() cluster.Options { return cluster.Options{Client: srv.Client(t)} },
			wantErr: "Client and Local are required",
		},
		{
			name:    "redis down",
			opts:    func() cluster.Options { return cluster.Options{Client: downClient, Local: &recorder{}} },
			wantErr: "cluster: subscribe",
		},
		{
			name: "default logger",
			opts: func() cluster.Options {
				return cluster.Options{Client: srv.Client(t), Prefix: newPrefix(), Local: &recorder{}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			n, err := cluster.Join(ctx, tt.opts())
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Join: %v", err)
				}
				if err := n.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				return
			}
			if err == nil {
				n.Close()
				t.Fatalf("Join succeeded, want an error with %q", tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Join error %q, want %q", err, tt.wantErr)
			}
		})
	}
}

// When the subscription drops, wakes may be lost: every node wakes all its
// connections once it is subscribed again, and signals flow again.
func TestWakeAllAfterGap(t *testing.T) {
	tests := []struct {
		name string
		gaps int
		// gap interrupts the subscriptions; a and b are the nodes.
		gap func(t *testing.T, srv *redistest.Server, a, b *member)
	}{
		{
			name: "crash, signals fail, restart",
			gaps: 1,
			gap: func(t *testing.T, srv *redistest.Server, a, _ *member) {
				if err := srv.Kill(); err != nil {
					t.Fatal(err)
				}
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := a.Wake(ctx, []string{"lost"}); err == nil {
					t.Error("Wake with Redis down returned no error")
				}
				// The listener notices and retries until Redis is back.
				waitUntil(t, "the interruption logged", func() bool {
					return strings.Contains(a.logs.String(), "cluster signals interrupted")
				})
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "restart",
			gaps: 1,
			gap: func(t *testing.T, srv *redistest.Server, _, _ *member) {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		},
		{
			name: "two restarts",
			gaps: 2,
			gap: func(t *testing.T, srv *redistest.Server, a, b *member) {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
				// Both nodes back before the second gap, or it would
				// merge with the first for the slower one.
				for _, m := range []*member{a, b} {
					waitUntil(t, "the first WakeAll", func() bool { return m.local.wakeAlls() >= 1 })
				}
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Config{})
			prefix := newPrefix()
			a := join(t, srv, prefix, 1)
			b := join(t, srv, prefix, 2)
			syncSignals(t, a.Node, b.local)
			syncSignals(t, b.Node, a.local)
			for _, m := range []*member{a, b} {
				if n := m.local.wakeAlls(); n != 0 {
					t.Fatalf("WakeAll called %d times before any gap", n)
				}
			}

			tt.gap(t, srv, a, b)

			for _, m := range []*member{a, b} {
				waitUntil(t, "WakeAll after the gap", func() bool { return m.local.wakeAlls() >= tt.gaps })
				if !strings.Contains(m.logs.String(), "cluster signals re-established") {
					t.Errorf("re-subscription not logged:\n%s", m.logs.String())
				}
			}
			// Signals flow again, both ways.
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := a.Kick(ctx, "10001", "after"); err != nil {
				t.Fatalf("Kick after the gap: %v", err)
			}
			syncSignals(t, a.Node, b.local)
			syncSignals(t, b.Node, a.local)
			if !b.local.has(event{Kind: "kick", UID: "10001", Reason: "after"}) {
				t.Error("kick sent after the gap not received")
			}
			if b.local.has(event{Kind: "wake", UID: "lost"}) {
				t.Error("a wake refused while Redis was down arrived anyway")
			}
		})
	}
}

// A message on the channel that is not a signal is ignored, and logged
// when unreadable; the node keeps handling signals.
func TestMalformedSignalsIgnored(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	prefix := newPrefix()
	node := join(t, srv, prefix, 1)
	raw := srv.Client(t)
	channel := prefix + "{signals}"
	tests := []struct {
		name    string
		payload string
		logged  bool // an "unreadable" warning is expected
	}{
		{name: "not JSON", payload: "wake 10001", logged: true},
		{name: "empty", payload: "", logged: true},
		{name: "truncated", payload: `{"k":"wake","n":2,"u":["10001"`, logged: true},
		{name: "uids not a list", payload: `{"k":"wake","n":2,"u":"10001"}`, logged: true},
		{name: "uid not a string", payload: `{"k":"kick","n":2,"u":[10001]}`, logged: true},
		{name: "node not a number", payload: `{"k":"kick","n":"2","u":["10001"]}`, logged: true},
		{name: "time not a number", payload: `{"k":"login","n":2,"u":["10001"],"t":"now"}`, logged: true},
		{name: "JSON array", payload: `["wake","10001"]`, logged: true},
		{name: "binary", payload: "\x00\xff\xfe{", logged: true},
		{name: "JSON null", payload: `null`},
		{name: "unknown kind", payload: `{"k":"explode","n":2,"u":["10001"]}`},
		{name: "no kind", payload: `{"n":2,"u":["10001"]}`},
		{name: "own node id", payload: `{"k":"kick","n":1,"u":["10001"],"r":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := strings.Count(node.logs.String(), "cluster signal unreadable")
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			if err := raw.Publish(ctx, channel, tt.payload).Err(); err != nil {
				t.Fatal(err)
			}
			m := fmt.Sprintf("%s%d", markerPrefix, markers.Add(1))
			if err := raw.Publish(ctx, channel, fmt.Sprintf(`{"k":"wake","n":2,"u":[%q]}`, m)).Err(); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "the node to handle the signal after the bad one", func() bool {
				return node.local.has(event{Kind: "wake", UID: m})
			})
			if got, wakeAll := node.local.snapshot(); len(got) != 0 || wakeAll != 0 {
				t.Errorf("acted on %q: %v, WakeAll %d", tt.payload, got, wakeAll)
			}
			after := strings.Count(node.logs.String(), "cluster signal unreadable")
			if tt.logged && after != before+1 {
				t.Errorf("unreadable signal logged %d times, want once; log:\n%s", after-before, node.logs.String())
			}
			if !tt.logged && after != before {
				t.Errorf("readable message logged as unreadable")
			}
		})
	}
	// Still a working node: a real signal after all of them is handled.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := raw.Publish(ctx, channel, `{"k":"kick","n":2,"u":["10009"],"r":"end"}`).Err(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "a kick after the malformed messages", func() bool {
		return node.local.has(event{Kind: "kick", UID: "10009", Reason: "end"})
	})
}

// Close stops the listener goroutine, whatever state the subscription is
// in, and every goroutine of the node's client once the caller closes it.
func TestCloseStopsGoroutines(t *testing.T) {
	tests := []struct {
		name string
		// run exercises the nodes before Close.
		run func(t *testing.T, srv *redistest.Server, a, b *member)
		// closeErr allows Close to report the failed connection.
		closeErr bool
	}{
		{
			name: "idle",
			run:  func(*testing.T, *redistest.Server, *member, *member) {},
		},
		{
			name: "after signals",
			run: func(t *testing.T, _ *redistest.Server, a, b *member) {
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				defer cancel()
				if err := a.LoggedIn(ctx, "10001", time.Now()); err != nil {
					t.Fatal(err)
				}
				syncSignals(t, a.Node, b.local)
			},
		},
		{
			name:     "while Redis is down",
			closeErr: true,
			run: func(t *testing.T, srv *redistest.Server, a, b *member) {
				if err := srv.Kill(); err != nil {
					t.Fatal(err)
				}
				for _, m := range []*member{a, b} {
					waitUntil(t, "the interruption logged", func() bool {
						return strings.Contains(m.logs.String(), "cluster signals interrupted")
					})
				}
			},
		},
		{
			name: "after a gap",
			run: func(t *testing.T, srv *redistest.Server, a, b *member) {
				if err := srv.Restart(); err != nil {
					t.Fatal(err)
				}
				for _, m := range []*member{a, b} {
					waitUntil(t, "WakeAll", func() bool { return m.local.wakeAlls() >= 1 })
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := redistest.Start(t, redistest.Config{})
			warm := redis.NewClient(&redis.Options{Addr: srv.Addr})
			if err := warm.Ping(context.Background()).Err(); err != nil {
				t.Fatal(err)
			}
			warm.Close()
			base := settledGoroutines()

			prefix := newPrefix()
			var members []*member
			var clients []*redis.Client
			for id := 1; id <= 2; id++ {
				c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true})
				clients = append(clients, c)
				m := &member{local: &recorder{}, logs: &logBuffer{}}
				ctx, cancel := context.WithTimeout(context.Background(), wait)
				n, err := cluster.Join(ctx, cluster.Options{Client: c, Prefix: prefix, NodeID: id, Local: m.local, Log: m.logs.Logger()})
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				m.Node = n
				members = append(members, m)
			}
			if runtime.NumGoroutine() <= base {
				t.Fatalf("no goroutine started by Join (%d before, %d now): the check below would prove nothing",
					base, runtime.NumGoroutine())
			}

			tt.run(t, srv, members[0], members[1])

			for _, m := range members {
				done := make(chan error, 1)
				go func() { done <- m.Close() }()
				select {
				case err := <-done:
					if err != nil && !tt.closeErr {
						t.Errorf("Close: %v", err)
					}
				case <-time.After(wait):
					t.Fatal("Close did not return")
				}
			}
			for _, c := range clients {
				c.Close()
			}
			deadline := time.Now().Add(wait)
			for runtime.NumGoroutine() > base {
				if time.Now().After(deadline) {
					var buf bytes.Buffer
					_ = pprof.Lookup("goroutine").WriteTo(&buf, 1)
					t.Fatalf("%d goroutines after Close, %d before Join:\n%s", runtime.NumGoroutine(), base, buf.String())
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}

// settledGoroutines returns the goroutine count once goroutines of
// earlier tests (closed clients, finished subtests) are gone.
func settledGoroutines() int {
	n := runtime.NumGoroutine()
	for range 50 {
		time.Sleep(10 * time.Millisecond)
		m := runtime.NumGoroutine()
		if m == n {
			return n
		}
		n = m
	}
	return n
}
