package sessions

import (
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"

	"github.com/inboxmq/inboxmq/inbox"
	redisstore "github.com/inboxmq/inboxmq/inbox/redis"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// startNode runs a node of a cluster sharing the Redis store under prefix.
func startNode(t *testing.T, srv *redistest.Server, prefix string, node int, opts Options) (*testServer, *redisstore.Store) {
	t.Helper()
	store := openRedisStore(t, srv, prefix, node)
	opts.NodeID, opts.Shared = node, true
	return startServer(t, store, opts), store
}

// sessionClient is a persistent client of either protocol.
type sessionClient struct {
	present bool
	msgs    <-chan message
	sub     func(filter string)
	close   func()
}

func connectPersistent(t *testing.T, v5 bool, addr, id string) sessionClient {
	t.Helper()
	if v5 {
		c := connectV5(t, addr, id, v5Options{User: "alice", Expiry: 600})
		return sessionClient{
			present: c.connack.SessionPresent, msgs: c.msgs,
			sub: func(f string) {
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: f, QoS: 1}}})
			},
			close: func() { c.close(nil) },
		}
	}
	c := connectV3(t, addr, id, "alice", false)
	return sessionClient{present: c.present, msgs: c.msgs, sub: func(f string) { c.sub(t, f, 1) }, close: c.close}
}

// On a shared store a session follows its client to another node, and
// back: the node it left replaces its stale copy with the stored session.
func TestSharedSessionFollowsClient(t *testing.T) {
	tests := []struct {
		name string
		v5   bool
	}{
		{name: "3.1.1"},
		{name: "MQTT 5", v5: true},
	}
	redis := redistest.Start(t, redistest.Config{})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := newPrefix()
			n1, store := startNode(t, redis, prefix, 1, Options{})
			n2, _ := startNode(t, redis, prefix, 2, Options{})

			c := connectPersistent(t, tt.v5, n1.addr, "dev1")
			c.sub("f/1")
			c.close()
			n1.rec.waitDisconnected(t, n1.rec.waitEstablished(t, "dev1", 1))
			s1, _ := storedSession(t, store, "dev1")

			// To node 2, without subscribing again.
			c = connectPersistent(t, tt.v5, n2.addr, "dev1")
			if !c.present {
				t.Fatal("node 2: session present 0 for a session held on node 1")
			}
			n2.rec.waitEstablished(t, "dev1", 1)
			s2, _ := storedSession(t, store, "dev1")
			if s2.Node != 2 || s2.Owner == s1.Owner || s2.Expires != 0 {
				t.Errorf("on node 2: stored %+v, want held by node 2 under a new owner", s2)
			}
			pub := connectV3(t, n2.addr, "pub", "bob", true)
			pub.pub(t, "f/1", false, "via node 2")
			if m := next(t, c.msgs); m.Topic != "f/1" || m.Payload != "via node 2" {
				t.Fatalf("node 2 delivered %+v, want the message on f/1", m)
			}
			c.sub("f/2")
			c.close()
			n2.rec.waitDisconnected(t, n2.rec.waitEstablished(t, "dev1", 1))

			// Node 1 still holds its stale copy (only f/1)...
			if subs := n1.subscriptions("dev1"); len(subs) != 1 {
				t.Fatalf("node 1's copy before the return: %v", subs)
			}
			// ...and replaces it with the stored session when the client returns.
			c = connectPersistent(t, tt.v5, n1.addr, "dev1")
			if !c.present {
				t.Fatal("back on node 1: session present 0")
			}
			n1.rec.waitEstablished(t, "dev1", 2)
			subs := n1.subscriptions("dev1")
			if _, ok := subs["f/2"]; !ok || len(subs) != 2 {
				t.Fatalf("back on node 1: subscriptions %v, want f/1 and f/2 (the stale copy was kept)", subs)
			}
			pub1 := connectV3(t, n1.addr, "pub", "bob", true)
			pub1.pub(t, "f/2", false, "via node 1")
			if m := next(t, c.msgs); m.Topic != "f/2" || m.Payload != "via node 1" {
				t.Fatalf("node 1 delivered %+v, want the message on f/2", m)
			}
			s3, _ := storedSession(t, store, "dev1")
			if s3.Node != 1 || len(s3.Subscriptions) != 2 {
				t.Errorf("back on node 1: stored %+v", s3)
			}
		})
	}
}

// A stale copy on the node a client left cannot end the session the
// client now holds on another node.
func TestSharedStaleCopyCannotEndNewerSession(t *testing.T) {
	redis := redistest.Start(t, redistest.Config{})
	tests := []struct {
		name   string
		opts   Options // of node 1
		expiry uint32  // of dev1's session
		// end ends node 1's stale copy of dev1.
		end func(t *testing.T, n1 *testServer)
	}{
		{
			name:   "mochi expires the stale copy",
			expiry: 1, // mochi ends node 1's copy a second or two after the client left
			end: func(t *testing.T, n1 *testServer) {
				waitUntil(t, "node 1 to expire its copy", func() bool {
					n1.rec.mu.Lock()
					defer n1.rec.mu.Unlock()
					return n1.rec.expired["dev1"] > 0
				})
			},
		},
		{
			name:   "the account's cap on node 1 ends the stale copy",
			opts:   Options{MaxPerAccount: 1},
			expiry: 600,
			end: func(t *testing.T, n1 *testServer) {
				connectV5(t, n1.addr, "dev2", v5Options{User: "alice", Expiry: 600})
				n1.rec.waitEstablished(t, "dev2", 1)
				if _, ok := n1.srv.Clients.Get("dev1"); ok {
					t.Fatal("node 1 kept its copy over the cap")
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := newPrefix()
			n1, store := startNode(t, redis, prefix, 1, tt.opts)
			n2, _ := startNode(t, redis, prefix, 2, Options{})
			c := connectV5(t, n1.addr, "dev1", v5Options{User: "alice", Expiry: tt.expiry})
			c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "g/1", QoS: 1}}})
			c.close(nil)
			n1.rec.waitDisconnected(t, n1.rec.waitEstablished(t, "dev1", 1))

			c2 := connectV5(t, n2.addr, "dev1", v5Options{User: "alice", Expiry: tt.expiry})
			if !c2.connack.SessionPresent {
				t.Fatal("node 2: session present 0")
			}
			n2.rec.waitEstablished(t, "dev1", 1)
			held, _ := storedSession(t, store, "dev1")

			tt.end(t, n1)

			s, ok := storedSession(t, store, "dev1")
			if !ok {
				t.Fatal("node 1 removed the session node 2 holds")
			}
			if s.Owner != held.Owner || s.Node != 2 || s.Expires != 0 {
				t.Fatalf("stored %+v, want node 2's %+v", s, held)
			}
		})
	}
}

// On a shared store Restore brings back only the sessions last held on
// this node; the others are found when their clients connect.
func TestSharedRestoreOwnSessions(t *testing.T) {
	redis := redistest.Start(t, redistest.Config{})
	now := time.Now()
	tests := []struct {
		name         string
		stored       inbox.Session
		wantRestored bool
	}{
		{
			name: "this node's session",
			stored: inbox.Session{ID: "dev1", Owner: "o", Username: "alice", Listener: listenerID, ProtocolVersion: 5, Node: 1,
				ExpiryInterval: time.Hour, Expires: now.Add(time.Hour).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "h/1", QoS: 1}}},
			wantRestored: true,
		},
		{
			name: "this node's session held at a crash",
			stored: inbox.Session{ID: "dev1", Owner: "o", Username: "alice", Listener: listenerID, ProtocolVersion: 4, Node: 1,
				ExpiryInterval: time.Hour, Subscriptions: []inbox.Subscription{{Filter: "h/1", QoS: 1}}},
			wantRestored: true,
		},
		{
			name: "another node's session",
			stored: inbox.Session{ID: "dev1", Owner: "o", Username: "alice", Listener: listenerID, ProtocolVersion: 5, Node: 2,
				ExpiryInterval: time.Hour, Expires: now.Add(time.Hour).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "h/1", QoS: 1}}},
			wantRestored: false,
		},
		{
			name: "another node's session held by a live connection",
			stored: inbox.Session{ID: "dev1", Owner: "o", Username: "alice", Listener: listenerID, ProtocolVersion: 4, Node: 2,
				ExpiryInterval: time.Hour, Subscriptions: []inbox.Subscription{{Filter: "h/1", QoS: 1}}},
			wantRestored: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := newPrefix()
			store := openRedisStore(t, redis, prefix, 1)
			if err := store.PutSession(testCtx(t), tt.stored); err != nil {
				t.Fatal(err)
			}
			n1 := startServer(t, store, Options{NodeID: 1, Shared: true})
			if got := n1.restored == 1; got != tt.wantRestored {
				t.Fatalf("restored %d, want restored %v", n1.restored, tt.wantRestored)
			}
			if n1.subscribed("dev1", "h/1") != tt.wantRestored {
				t.Errorf("subscribed on node 1: %v, want %v", n1.subscribed("dev1", "h/1"), tt.wantRestored)
			}
			s, ok := storedSession(t, store, "dev1")
			if !ok {
				t.Fatal("Restore removed a stored session")
			}
			if !tt.wantRestored && (s.Expires != tt.stored.Expires || s.Owner != tt.stored.Owner) {
				t.Errorf("Restore changed another node's session: %+v", s)
			}
			// Either way the client gets its session on this node.
			c := connectPersistent(t, tt.stored.ProtocolVersion == 5, n1.addr, "dev1")
			if !c.present {
				t.Fatal("session present 0")
			}
			n1.rec.waitEstablished(t, "dev1", 1)
			if !n1.subscribed("dev1", "h/1") {
				t.Error("the stored subscription is not in effect")
			}
		})
	}
}

// With the store unreachable a client still connects: it gets what the
// node holds (nothing here) and the failures are logged.
func TestSharedStoreDown(t *testing.T) {
	tests := []struct {
		name string
		v5   bool
	}{
		{name: "3.1.1"},
		{name: "MQTT 5", v5: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redis := redistest.Start(t, redistest.Config{})
			n, _ := startNode(t, redis, newPrefix(), 1, Options{Timeout: time.Second})
			if err := redis.Kill(); err != nil {
				t.Fatal(err)
			}
			c := connectPersistent(t, tt.v5, n.addr, "dev1")
			if c.present {
				t.Error("session present 1 without a store")
			}
			n.rec.waitEstablished(t, "dev1", 1)
			for _, want := range []string{"session not looked up: store error", "session not stored"} {
				if !strings.Contains(n.logs.String(), want) {
					t.Errorf("log has no %q:\n%s", want, n.logs.String())
				}
			}
		})
	}
}
