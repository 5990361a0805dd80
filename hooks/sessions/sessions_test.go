package sessions

import (
	"slices"
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/inbox"
)

func TestInit(t *testing.T) {
	store := openPebble(t)
	srv := mqtt.New(nil)
	tests := []struct {
		name    string
		config  any
		wantErr string // "" means Init succeeds
	}{
		{name: "nil config", config: nil, wantErr: "needs *sessions.Options"},
		{name: "options by value", config: Options{Server: srv, Store: store, MaxExpiry: time.Hour}, wantErr: "needs *sessions.Options"},
		{name: "nil pointer", config: (*Options)(nil), wantErr: "needs *sessions.Options"},
		{name: "no server", config: &Options{Store: store, MaxExpiry: time.Hour}, wantErr: "Server and Options.Store are required"},
		{name: "no store", config: &Options{Server: srv, MaxExpiry: time.Hour}, wantErr: "Server and Options.Store are required"},
		{name: "no max expiry", config: &Options{Server: srv, Store: store}, wantErr: "MaxExpiry must be positive"},
		{name: "negative max expiry", config: &Options{Server: srv, Store: store, MaxExpiry: -time.Second}, wantErr: "MaxExpiry must be positive"},
		{name: "minimal", config: &Options{Server: srv, Store: store, MaxExpiry: time.Hour}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := new(Hook)
			err := h.Init(tt.config)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Init: %v", err)
				}
				// Defaults filled in.
				if h.opts.SweepInterval != 10*time.Second || h.opts.Timeout != 5*time.Second || h.opts.Log == nil {
					t.Errorf("defaults: sweep %v, timeout %v, log %v", h.opts.SweepInterval, h.opts.Timeout, h.opts.Log)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Init error %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestProvides(t *testing.T) {
	h := new(Hook)
	tests := []struct {
		name  string
		event byte
		want  bool
	}{
		{"session establish", mqtt.OnSessionEstablish, true},
		{"session established", mqtt.OnSessionEstablished, true},
		{"subscribed", mqtt.OnSubscribed, true},
		{"unsubscribed", mqtt.OnUnsubscribed, true},
		{"disconnect", mqtt.OnDisconnect, true},
		{"client expired", mqtt.OnClientExpired, true},
		{"retain message", mqtt.OnRetainMessage, true},
		{"retained expired", mqtt.OnRetainedExpired, true},
		{"not the publish path", mqtt.OnPublish, false},
		{"not authentication", mqtt.OnConnectAuthenticate, false},
		{"not mochi's own stored clients", mqtt.StoredClients, false},
		{"not mochi's own stored retained messages", mqtt.StoredRetainedMessages, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := h.Provides(tt.event); got != tt.want {
				t.Fatalf("Provides(%d) = %v, want %v", tt.event, got, tt.want)
			}
		})
	}
}

// A persistent session is stored when its connection is established,
// held (Expires 0) by a token of that connection; any other one is not,
// and removes what an earlier persistent connection stored.
func TestSessionStoredAtConnect(t *testing.T) {
	tests := []struct {
		name         string
		v5           bool
		clean        bool   // 3.1.1 clean session
		expiry       uint32 // MQTT 5 session expiry
		wantStored   bool
		wantInterval time.Duration
	}{
		{name: "3.1.1 clean session 0", clean: false, wantStored: true, wantInterval: time.Hour},
		{name: "3.1.1 clean session 1", clean: true, wantStored: false},
		{name: "MQTT 5 session expiry 300s", v5: true, expiry: 300, wantStored: true, wantInterval: 300 * time.Second},
		{name: "MQTT 5 session expiry capped at MaxExpiry", v5: true, expiry: 7200, wantStored: true, wantInterval: time.Hour},
		{name: "MQTT 5 session expiry 0", v5: true, expiry: 0, wantStored: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openPebble(t)
			// What an earlier persistent connection left: a connection
			// that is not persistent must remove it.
			if err := store.PutSession(testCtx(t), inbox.Session{
				ID: "dev1", Owner: "earlier", ProtocolVersion: 4, ExpiryInterval: time.Hour,
				Expires: time.Now().Add(time.Hour).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "old/#"}},
			}); err != nil {
				t.Fatal(err)
			}
			ts := startServer(t, store, Options{NodeID: 7, MaxExpiry: time.Hour})
			// Restore brought the earlier session back as a disconnected client.
			if ts.restored != 1 {
				t.Fatalf("Restore restored %d sessions, want 1", ts.restored)
			}
			if tt.v5 {
				connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: tt.expiry, CleanStart: tt.expiry == 0})
			} else {
				connectV3(t, ts.addr, "dev1", "alice", tt.clean)
			}
			ts.rec.waitEstablished(t, "dev1", 1)
			got, ok := storedSession(t, store, "dev1")
			if ok != tt.wantStored {
				t.Fatalf("session stored: %v, want %v (%+v)", ok, tt.wantStored, got)
			}
			if !tt.wantStored {
				return
			}
			wantProto := byte(4)
			if tt.v5 {
				wantProto = 5
			}
			if got.Owner == "" || got.Owner == "earlier" {
				t.Errorf("owner %q, want a token of the new connection", got.Owner)
			}
			if got.ID != "dev1" || got.Username != "alice" || got.Listener != listenerID || got.ProtocolVersion != wantProto ||
				got.ExpiryInterval != tt.wantInterval || got.Expires != 0 || got.Node != 7 {
				t.Errorf("stored %+v, want id dev1, user alice, listener %s, protocol %d, interval %v, held (Expires 0), node 7",
					got, listenerID, wantProto, tt.wantInterval)
			}
			// Resuming the restored session keeps its subscriptions.
			if want := []inbox.Subscription{{Filter: "old/#"}}; !sameSubs(got.Subscriptions, want) {
				t.Errorf("subscriptions %q, want the resumed session's %q", filters(got.Subscriptions), filters(want))
			}
		})
	}
}

// The session's subscriptions are stored before the SUBACK and the
// UNSUBACK, so a client that was told of them finds them after a restart.
func TestSubscriptionsStoredBeforeAck(t *testing.T) {
	t.Run("3.1.1", func(t *testing.T) {
		store := openPebble(t)
		ts := startServer(t, store, Options{})
		c := connectV3(t, ts.addr, "dev1", "alice", false)
		ts.rec.waitEstablished(t, "dev1", 1)
		c.sub(t, "x/1", 1)
		c.sub(t, "x/2/#", 2)
		s, _ := storedSession(t, store, "dev1")
		want := []inbox.Subscription{{Filter: "x/1", QoS: 1}, {Filter: "x/2/#", QoS: 2}}
		if !sameSubs(s.Subscriptions, want) {
			t.Fatalf("after SUBACK: stored %+v, want %+v", s.Subscriptions, want)
		}
		c.unsub(t, "x/1")
		s, _ = storedSession(t, store, "dev1")
		if want := want[1:]; !sameSubs(s.Subscriptions, want) {
			t.Fatalf("after UNSUBACK: stored %+v, want %+v", s.Subscriptions, want)
		}
		if s.Expires != 0 {
			t.Errorf("a connected session has Expires %d", s.Expires)
		}
	})
	t.Run("MQTT 5 options", func(t *testing.T) {
		store := openPebble(t)
		ts := startServer(t, store, Options{})
		c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 600})
		ts.rec.waitEstablished(t, "dev1", 1)
		id := 7
		c.sub(t, &paho5.Subscribe{
			Properties: &paho5.SubscribeProperties{SubscriptionIdentifier: &id},
			Subscriptions: []paho5.SubscribeOptions{
				{Topic: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
				{Topic: "b/#", QoS: 2, RetainHandling: 2},
			},
		})
		c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "c", QoS: 0}}})
		s, _ := storedSession(t, store, "dev1")
		want := []inbox.Subscription{
			{Filter: "a/+", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1, Identifier: 7},
			{Filter: "b/#", QoS: 2, RetainHandling: 2, Identifier: 7},
			{Filter: "c"},
		}
		if !sameSubs(s.Subscriptions, want) {
			t.Fatalf("after SUBACK: stored %+v, want %+v", s.Subscriptions, want)
		}
		c.unsub(t, "a/+", "c")
		s, _ = storedSession(t, store, "dev1")
		if want := want[1:2]; !sameSubs(s.Subscriptions, want) {
			t.Fatalf("after UNSUBACK: stored %+v, want %+v", s.Subscriptions, want)
		}
	})
	t.Run("clean session: nothing stored", func(t *testing.T) {
		store := openPebble(t)
		ts := startServer(t, store, Options{})
		c := connectV3(t, ts.addr, "dev1", "alice", true)
		ts.rec.waitEstablished(t, "dev1", 1)
		c.sub(t, "x/1", 1)
		if s, ok := storedSession(t, store, "dev1"); ok {
			t.Fatalf("clean session stored: %+v", s)
		}
	})
}

// sameSubs compares subscriptions in any order.
func sameSubs(got, want []inbox.Subscription) bool {
	key := func(a, b inbox.Subscription) int { return strings.Compare(a.Filter, b.Filter) }
	got, want = slices.Clone(got), slices.Clone(want)
	slices.SortFunc(got, key)
	slices.SortFunc(want, key)
	return slices.Equal(got, want)
}

// When a persistent connection ends, its session starts to expire: Expires
// is set from the end and the interval; a session that ends with its
// connection is removed.
func TestDisconnectStartsExpiry(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name string
		// run connects dev1, subscribes and ends the connection.
		run          func(t *testing.T, ts *testServer)
		wantStored   bool
		wantInterval time.Duration
	}{
		{
			name: "3.1.1 DISCONNECT",
			run: func(t *testing.T, ts *testServer) {
				c := connectV3(t, ts.addr, "dev1", "alice", false)
				c.sub(t, "e/1", 1)
				c.close()
			},
			wantStored: true, wantInterval: time.Hour,
		},
		{
			name: "MQTT 5 DISCONNECT",
			run: func(t *testing.T, ts *testServer) {
				c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 300})
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "e/1", QoS: 1}}})
				c.close(nil)
			},
			wantStored: true, wantInterval: 300 * time.Second,
		},
		{
			name: "MQTT 5 DISCONNECT with a new session expiry",
			run: func(t *testing.T, ts *testServer) {
				c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 300})
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "e/1", QoS: 1}}})
				c.close(u(600))
			},
			wantStored: true, wantInterval: 600 * time.Second,
		},
		{
			name: "MQTT 5 connection lost without DISCONNECT",
			run: func(t *testing.T, ts *testServer) {
				c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 300})
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "e/1", QoS: 1}}})
				c.conn.Close()
			},
			wantStored: true, wantInterval: 300 * time.Second,
		},
		{
			name: "MQTT 5 DISCONNECT with session expiry 0 ends the session",
			run: func(t *testing.T, ts *testServer) {
				c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 300})
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "e/1", QoS: 1}}})
				c.close(u(0))
			},
			wantStored: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			store := openPebble(t)
			ts := startServer(t, store, Options{})
			before := time.Now()
			tt.run(t, ts)
			cl := ts.rec.waitEstablished(t, "dev1", 1)
			ts.rec.waitDisconnected(t, cl)
			after := time.Now()
			s, ok := storedSession(t, store, "dev1")
			if ok != tt.wantStored {
				t.Fatalf("stored after the end: %v, want %v (%+v)", ok, tt.wantStored, s)
			}
			if !ok {
				return
			}
			lo, hi := before.Add(tt.wantInterval).UnixMilli(), after.Add(tt.wantInterval).UnixMilli()
			if s.Expires < lo || s.Expires > hi {
				t.Errorf("Expires %d, want between %d and %d (end + %v)", s.Expires, lo, hi, tt.wantInterval)
			}
			if s.ExpiryInterval != tt.wantInterval {
				t.Errorf("interval %v, want %v", s.ExpiryInterval, tt.wantInterval)
			}
			if want := []inbox.Subscription{{Filter: "e/1", QoS: 1}}; !sameSubs(s.Subscriptions, want) {
				t.Errorf("subscriptions %+v, want %+v", s.Subscriptions, want)
			}
		})
	}
}

// A session stored by one server comes back in a fresh server on the same
// store: as a disconnected client holding its subscriptions, so that a
// client that does not subscribe again gets session present and its
// messages.
func TestRestore(t *testing.T) {
	tests := []struct {
		name string
		v5   bool
	}{
		{name: "3.1.1"},
		{name: "MQTT 5", v5: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			ts := startServer(t, db, Options{})
			wantSubs := map[string]packets.Subscription{}
			if tt.v5 {
				c := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 600})
				id := 3
				c.sub(t, &paho5.Subscribe{
					Properties: &paho5.SubscribeProperties{SubscriptionIdentifier: &id},
					Subscriptions: []paho5.SubscribeOptions{
						{Topic: "r/a", QoS: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1},
					},
				})
				c.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "r/b/#", QoS: 0}}})
				c.close(nil)
				wantSubs["r/a"] = packets.Subscription{Filter: "r/a", Qos: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1, Identifier: 3}
				wantSubs["r/b/#"] = packets.Subscription{Filter: "r/b/#"}
			} else {
				c := connectV3(t, ts.addr, "dev1", "alice", false)
				c.sub(t, "r/a", 1)
				c.sub(t, "r/b/#", 0)
				c.close()
				wantSubs["r/a"] = packets.Subscription{Filter: "r/a", Qos: 1}
				wantSubs["r/b/#"] = packets.Subscription{Filter: "r/b/#"}
			}
			ts.rec.waitDisconnected(t, ts.rec.waitEstablished(t, "dev1", 1))
			stored, _ := storedSession(t, db, "dev1")
			ts.stop()
			db.reopen(t)

			before := time.Now()
			ts2 := startServer(t, db, Options{})
			after := time.Now()
			if ts2.restored != 1 {
				t.Fatalf("Restore restored %d sessions, want 1", ts2.restored)
			}
			cl, ok := ts2.srv.Clients.Get("dev1")
			if !ok {
				t.Fatal("restored session not in the server")
			}
			if !cl.Closed() || cl.Properties.Clean || string(cl.Properties.Username) != "alice" || cl.Net.Listener != listenerID {
				t.Errorf("restored client: closed %v, clean %v, user %q, listener %q; want a disconnected persistent alice on %s",
					cl.Closed(), cl.Properties.Clean, cl.Properties.Username, cl.Net.Listener, listenerID)
			}
			if tt.v5 {
				left := time.Duration(cl.Properties.Props.SessionExpiryInterval) * time.Second
				if cl.Properties.ProtocolVersion != 5 || !cl.Properties.Props.SessionExpiryIntervalFlag || left <= 0 || left > 600*time.Second {
					t.Errorf("restored MQTT 5 session: protocol %d, expiry %v (flag %v); want 5 and (0, 600s]",
						cl.Properties.ProtocolVersion, left, cl.Properties.Props.SessionExpiryIntervalFlag)
				}
				// What is left of the interval (rounded up to seconds): it
				// runs from the end of the connection, not from the restart.
				end := time.UnixMilli(stored.Expires)
				if left > end.Sub(before)+time.Second || left < end.Sub(after) {
					t.Errorf("restored expiry %v, want what was left at the restore: between %v and %v",
						left, end.Sub(after), end.Sub(before)+time.Second)
				}
			} else if cl.Properties.ProtocolVersion != 4 {
				t.Errorf("restored protocol %d, want 4", cl.Properties.ProtocolVersion)
			}
			got := ts2.subscriptions("dev1")
			if len(got) != len(wantSubs) {
				t.Errorf("restored subscriptions %+v, want %+v", got, wantSubs)
			}
			for f, want := range wantSubs {
				if g := got[f]; g.Filter != want.Filter || g.Qos != want.Qos || g.NoLocal != want.NoLocal ||
					g.RetainAsPublished != want.RetainAsPublished || g.RetainHandling != want.RetainHandling || g.Identifier != want.Identifier {
					t.Errorf("restored %s: %+v, want %+v", f, g, want)
				}
				if !ts2.subscribed("dev1", strings.ReplaceAll(f, "#", "x")) {
					t.Errorf("topic tree does not deliver %s to the restored session", f)
				}
			}

			// The client comes back without subscribing and gets its
			// messages.
			var msgs <-chan message
			if tt.v5 {
				c := connectV5(t, ts2.addr, "dev1", v5Options{User: "alice", Expiry: 600})
				if !c.connack.SessionPresent {
					t.Fatal("CONNACK after restore: session present 0")
				}
				msgs = c.msgs
			} else {
				c := connectV3(t, ts2.addr, "dev1", "alice", false)
				if !c.present {
					t.Fatal("CONNACK after restore: session present 0")
				}
				msgs = c.msgs
			}
			pub := connectV3(t, ts2.addr, "pub", "bob", true)
			pub.pub(t, "r/a", false, "hello")
			if m := next(t, msgs); m.Topic != "r/a" || m.Payload != "hello" {
				t.Fatalf("after restore got %+v, want hello on r/a", m)
			}
			// And the session is held again, with its subscriptions.
			ts2.rec.waitEstablished(t, "dev1", 1)
			s, _ := storedSession(t, db, "dev1")
			if s.Expires != 0 || s.Owner == stored.Owner || len(s.Subscriptions) != 2 {
				t.Errorf("after reconnecting: stored %+v, want held by a new owner with 2 subscriptions", s)
			}
		})
	}
}

// Restore starts from what the store holds, whatever state it was left in.
func TestRestoreStoredStates(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name   string
		stored inbox.Session
		shared bool
		// wantRestored says whether the session comes back; wantKept
		// whether the store still has it after Restore.
		wantRestored bool
	}{
		{
			name: "held at a crash (Expires 0)",
			stored: inbox.Session{ID: "dev1", Owner: "o1", Username: "alice", Listener: listenerID, ProtocolVersion: 4,
				ExpiryInterval: time.Hour, Expires: 0, Subscriptions: []inbox.Subscription{{Filter: "c/1", QoS: 1}}},
			wantRestored: true,
		},
		{
			name: "disconnected, not expired",
			stored: inbox.Session{ID: "dev1", Owner: "o1", Username: "alice", Listener: listenerID, ProtocolVersion: 5,
				ExpiryInterval: time.Hour, Expires: now.Add(30 * time.Minute).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "c/1"}}},
			wantRestored: true,
		},
		{
			name: "expired while down",
			stored: inbox.Session{ID: "dev1", Owner: "o1", Username: "alice", Listener: listenerID, ProtocolVersion: 4,
				ExpiryInterval: time.Hour, Expires: now.Add(-time.Minute).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "c/1"}}},
			wantRestored: false,
		},
		{
			name: "another node's session on a private store",
			stored: inbox.Session{ID: "dev1", Owner: "o1", ProtocolVersion: 4, Node: 9,
				ExpiryInterval: time.Hour, Expires: now.Add(time.Minute).UnixMilli(), Subscriptions: []inbox.Subscription{{Filter: "c/1"}}},
			wantRestored: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			if err := db.PutSession(testCtx(t), tt.stored); err != nil {
				t.Fatal(err)
			}
			before := time.Now()
			ts := startServer(t, db, Options{NodeID: 1})
			after := time.Now()
			if got := ts.restored == 1; got != tt.wantRestored {
				t.Fatalf("restored %d sessions, want restored %v", ts.restored, tt.wantRestored)
			}
			_, inServer := ts.srv.Clients.Get("dev1")
			if inServer != tt.wantRestored || ts.subscribed("dev1", "c/1") != tt.wantRestored {
				t.Errorf("in the server: %v, subscribed: %v; want %v", inServer, ts.subscribed("dev1", "c/1"), tt.wantRestored)
			}
			s, ok := storedSession(t, db, "dev1")
			if !tt.wantRestored {
				return
			}
			if !ok {
				t.Fatal("restored session gone from the store")
			}
			if tt.stored.Expires == 0 {
				// The crash is counted as the end of the connection.
				lo, hi := before.Add(time.Hour).UnixMilli(), after.Add(time.Hour).UnixMilli()
				if s.Expires < lo || s.Expires > hi {
					t.Errorf("Expires after a crash %d, want between %d and %d", s.Expires, lo, hi)
				}
			} else if s.Expires != tt.stored.Expires {
				t.Errorf("Expires changed from %d to %d", tt.stored.Expires, s.Expires)
			}
			if s.Owner != tt.stored.Owner {
				t.Errorf("owner changed from %q to %q", tt.stored.Owner, s.Owner)
			}
		})
	}
}

// A clean start discards the stored session, whatever protocol either
// connection spoke; a new persistent session starts empty.
func TestCleanStartRemovesSession(t *testing.T) {
	tests := []struct {
		name string
		// second connects dev1 after a persistent session with a subscription.
		second     func(t *testing.T, addr string)
		wantStored bool // a new, empty session
	}{
		{
			name:   "3.1.1 clean session 1",
			second: func(t *testing.T, addr string) { connectV3(t, addr, "dev1", "alice", true) },
		},
		{
			name: "MQTT 5 clean start, expiry 0",
			second: func(t *testing.T, addr string) {
				connectV5(t, addr, "dev1", v5Options{User: "alice", CleanStart: true})
			},
		},
		{
			name: "MQTT 5 clean start, expiry 300",
			second: func(t *testing.T, addr string) {
				connectV5(t, addr, "dev1", v5Options{User: "alice", CleanStart: true, Expiry: 300})
			},
			wantStored: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			ts := startServer(t, db, Options{})
			c := connectV3(t, ts.addr, "dev1", "alice", false)
			c.sub(t, "k/1", 1)
			c.close()
			first := ts.rec.waitEstablished(t, "dev1", 1)
			ts.rec.waitDisconnected(t, first)
			if _, ok := storedSession(t, db, "dev1"); !ok {
				t.Fatal("persistent session not stored")
			}

			tt.second(t, ts.addr)
			ts.rec.waitEstablished(t, "dev1", 2)
			s, ok := storedSession(t, db, "dev1")
			if ok != tt.wantStored {
				t.Fatalf("stored after the clean start: %v (%+v), want %v", ok, s, tt.wantStored)
			}
			if ok && len(s.Subscriptions) != 0 {
				t.Errorf("new session kept the discarded subscriptions: %s", filters(s.Subscriptions))
			}
			ts.stop()
			db.reopen(t)
			ts2 := startServer(t, db, Options{})
			if ts2.subscribed("dev1", "k/1") {
				t.Error("the discarded subscription came back after a restart")
			}
		})
	}
}

// The sweep removes sessions that expired from the store and from the
// server; it never touches a held session or one still running.
func TestSweep(t *testing.T) {
	tests := []struct {
		name string
		// setup returns the session id the sweep must remove ("" for
		// none) and the one it must keep ("" for none).
		setup      func(t *testing.T, ts *testServer, db *pebbleDB) (gone, kept string)
		maxExpiry  time.Duration
		preRestore func(t *testing.T, db *pebbleDB)
	}{
		{
			name:      "3.1.1 session past MaxExpiry",
			maxExpiry: time.Second, // mochi's own expiry of 3.1.1 sessions is off (its default maximum)
			setup: func(t *testing.T, ts *testServer, _ *pebbleDB) (string, string) {
				c := connectV3(t, ts.addr, "dev1", "alice", false)
				c.sub(t, "s/1", 1)
				c.close()
				ts.rec.waitDisconnected(t, ts.rec.waitEstablished(t, "dev1", 1))
				return "dev1", ""
			},
		},
		{
			name:      "expired while the server was down",
			maxExpiry: time.Hour,
			preRestore: func(t *testing.T, db *pebbleDB) {
				if err := db.PutSession(testCtx(t), inbox.Session{ID: "dev1", Owner: "o", ProtocolVersion: 4,
					ExpiryInterval: time.Minute, Expires: time.Now().Add(-time.Second).UnixMilli()}); err != nil {
					t.Fatal(err)
				}
			},
			setup: func(*testing.T, *testServer, *pebbleDB) (string, string) { return "dev1", "" },
		},
		{
			name:      "a held session is never swept",
			maxExpiry: time.Second,
			setup: func(t *testing.T, ts *testServer, _ *pebbleDB) (string, string) {
				c := connectV3(t, ts.addr, "dev1", "alice", false)
				c.sub(t, "s/1", 1)
				ts.rec.waitEstablished(t, "dev1", 1)
				return "", "dev1"
			},
		},
		{
			name:      "a disconnected session not yet expired is kept",
			maxExpiry: time.Hour,
			setup: func(t *testing.T, ts *testServer, _ *pebbleDB) (string, string) {
				c := connectV3(t, ts.addr, "dev1", "alice", false)
				c.sub(t, "s/1", 1)
				c.close()
				ts.rec.waitDisconnected(t, ts.rec.waitEstablished(t, "dev1", 1))
				return "", "dev1"
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			if tt.preRestore != nil {
				tt.preRestore(t, db)
			}
			ts := startServer(t, db, Options{MaxExpiry: tt.maxExpiry, SweepInterval: 20 * time.Millisecond})
			gone, kept := tt.setup(t, ts, db)
			// A canary that expires at once: when it is gone, a sweep ran
			// after the setup.
			if err := db.PutSession(testCtx(t), inbox.Session{ID: "canary", Owner: "o", ProtocolVersion: 4,
				ExpiryInterval: time.Millisecond, Expires: time.Now().UnixMilli()}); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "a sweep", func() bool { _, ok := storedSession(t, db, "canary"); return !ok })
			if gone != "" {
				waitUntil(t, "the expired session swept from the store and the server", func() bool {
					_, stored := storedSession(t, db, gone)
					_, inServer := ts.srv.Clients.Get(gone)
					return !stored && !inServer
				})
				if ts.subscribed(gone, "s/1") {
					t.Error("swept session still subscribed in the topic tree")
				}
				if !strings.Contains(ts.logs.String(), "persistent sessions expired") {
					t.Error("sweep not logged")
				}
			}
			if kept != "" {
				if _, ok := storedSession(t, db, kept); !ok {
					t.Error("sweep removed a session that had not expired")
				}
				if _, ok := ts.srv.Clients.Get(kept); !ok {
					t.Error("sweep removed a client that had not expired from the server")
				}
				if !ts.subscribed(kept, "s/1") {
					t.Error("sweep unsubscribed a session that had not expired")
				}
			}
		})
	}
}

// MaxPerAccount caps the persistent sessions of one account: past it the
// sessions disconnected longest ago end, never a connected one, and only
// within the account.
func TestMaxPerAccount(t *testing.T) {
	type conn struct{ id, user string }
	tests := []struct {
		name string
		cap  int
		// before connect and disconnect, in order; after connect and stay.
		before, after []conn
		restart       bool // between before and after
		wantGone      []string
		wantKept      []string
	}{
		{
			name:     "oldest disconnected ends first",
			cap:      2,
			before:   []conn{{"c1", "alice"}, {"c2", "alice"}},
			after:    []conn{{"c3", "alice"}},
			wantGone: []string{"c1"},
			wantKept: []string{"c2", "c3"},
		},
		{
			name:     "several over the cap",
			cap:      1,
			before:   []conn{{"c1", "alice"}, {"c2", "alice"}},
			after:    []conn{{"c3", "alice"}},
			wantGone: []string{"c1", "c2"},
			wantKept: []string{"c3"},
		},
		{
			name:     "connected sessions never end",
			cap:      1,
			after:    []conn{{"c1", "alice"}, {"c2", "alice"}, {"c3", "alice"}},
			wantKept: []string{"c1", "c2", "c3"},
		},
		{
			name:     "accounts are capped separately",
			cap:      1,
			before:   []conn{{"c1", "alice"}},
			after:    []conn{{"c2", "bob"}},
			wantKept: []string{"c1", "c2"},
		},
		{
			name:     "anonymous clients are not capped",
			cap:      1,
			before:   []conn{{"c1", ""}, {"c2", ""}},
			after:    []conn{{"c3", ""}},
			wantKept: []string{"c1", "c2", "c3"},
		},
		{
			name:     "no cap",
			cap:      0,
			before:   []conn{{"c1", "alice"}, {"c2", "alice"}},
			after:    []conn{{"c3", "alice"}},
			wantKept: []string{"c1", "c2", "c3"},
		},
		{
			name:     "restored sessions count, by when they ended",
			cap:      2,
			before:   []conn{{"c1", "alice"}, {"c2", "alice"}},
			restart:  true,
			after:    []conn{{"c3", "alice"}},
			wantGone: []string{"c1"},
			wantKept: []string{"c2", "c3"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			opts := Options{MaxPerAccount: tt.cap}
			ts := startServer(t, db, opts)
			for _, c := range tt.before {
				cl := connectV3(t, ts.addr, c.id, c.user, false)
				cl.close()
				ts.rec.waitDisconnected(t, ts.rec.waitEstablished(t, c.id, 1))
				nextMilli(time.Now().UnixMilli()) // a distinct end time for each
			}
			if tt.restart {
				ts.stop()
				db.reopen(t)
				ts = startServer(t, db, opts)
				if ts.restored != len(tt.before) {
					t.Fatalf("restored %d sessions, want %d", ts.restored, len(tt.before))
				}
			}
			for _, c := range tt.after {
				connectV3(t, ts.addr, c.id, c.user, false)
				ts.rec.waitEstablished(t, c.id, 1)
			}
			for _, id := range tt.wantGone {
				if _, ok := storedSession(t, db, id); ok {
					t.Errorf("session %s over the cap still stored", id)
				}
				if _, ok := ts.srv.Clients.Get(id); ok {
					t.Errorf("session %s over the cap still in the server", id)
				}
			}
			for _, id := range tt.wantKept {
				if _, ok := storedSession(t, db, id); !ok {
					t.Errorf("session %s ended, want kept", id)
				}
				if _, ok := ts.srv.Clients.Get(id); !ok {
					t.Errorf("session %s not in the server, want kept", id)
				}
			}
			if logged := strings.Contains(ts.logs.String(), "over the account's cap"); logged != (len(tt.wantGone) > 0) {
				t.Errorf("cap enforcement logged: %v, want %v", logged, len(tt.wantGone) > 0)
			}
		})
	}
}

// A connection that was taken over no longer writes the session: its late
// writes (a SUBACK being handled, its end) cannot undo the new holder's.
func TestTakenOverConnectionCannotOverwrite(t *testing.T) {
	tests := []struct {
		name string
		// late is a write of the old connection after the takeover.
		late func(t *testing.T, h *Hook, old *mqtt.Client)
	}{
		{name: "its end", late: func(_ *testing.T, h *Hook, old *mqtt.Client) { h.OnDisconnect(old, nil, false) }},
		{name: "its end with session expiry 0", late: func(_ *testing.T, h *Hook, old *mqtt.Client) { h.OnDisconnect(old, nil, true) }},
		{name: "a SUBSCRIBE", late: func(_ *testing.T, h *Hook, old *mqtt.Client) {
			h.OnSubscribed(old, packets.Packet{}, []byte{1})
		}},
		{name: "an UNSUBSCRIBE", late: func(_ *testing.T, h *Hook, old *mqtt.Client) { h.OnUnsubscribed(old, packets.Packet{}) }},
		{name: "a store write under an old token", late: func(t *testing.T, h *Hook, old *mqtt.Client) {
			ok, err := h.opts.Store.UpdateSession(testCtx(t), inbox.Session{ID: old.ID, Owner: "stale", ProtocolVersion: 4})
			if ok || err != nil {
				t.Errorf("store write of a stale owner: ok %v, err %v; want refused", ok, err)
			}
			ok, err = h.opts.Store.DeleteSession(testCtx(t), old.ID, "stale")
			if ok || err != nil {
				t.Errorf("store delete of a stale owner: ok %v, err %v; want refused", ok, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			ts := startServer(t, db, Options{})
			a := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 600})
			a.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "o/a", QoS: 1}}})
			old := ts.rec.waitEstablished(t, "dev1", 1)
			sa, _ := storedSession(t, db, "dev1")

			b := connectV5(t, ts.addr, "dev1", v5Options{User: "alice", Expiry: 600})
			if !b.connack.SessionPresent {
				t.Fatal("takeover: session present 0")
			}
			ts.rec.waitEstablished(t, "dev1", 2)
			ts.rec.waitDisconnected(t, old)
			b.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "o/b", QoS: 1}}})
			sb, _ := storedSession(t, db, "dev1")
			if sb.Owner == sa.Owner || sb.Expires != 0 {
				t.Fatalf("after the takeover: stored %+v, want held (Expires 0) by a new owner (old %q)", sb, sa.Owner)
			}
			want := []inbox.Subscription{{Filter: "o/a", QoS: 1}, {Filter: "o/b", QoS: 1}}
			if !sameSubs(sb.Subscriptions, want) {
				t.Fatalf("after the takeover: subscriptions %s", filters(sb.Subscriptions))
			}

			tt.late(t, ts.hook, old)

			s, ok := storedSession(t, db, "dev1")
			if !ok {
				t.Fatal("the old connection removed the new one's session")
			}
			if s.Owner != sb.Owner || s.Expires != 0 || !sameSubs(s.Subscriptions, want) {
				t.Fatalf("the old connection overwrote the session: %+v, want %+v", s, sb)
			}
			// For MaxPerAccount the session is still a connected one,
			// which the cap never ends.
			ts.hook.mu.Lock()
			var ended int64
			i := slices.IndexFunc(ts.hook.accounts["alice"], func(s accountSession) bool { return s.id == "dev1" })
			if i >= 0 {
				ended = ts.hook.accounts["alice"][i].ended
			}
			ts.hook.mu.Unlock()
			tracked := i >= 0
			if !tracked || ended != 0 {
				t.Errorf("account tracking: tracked %v, ended at %d; want tracked as connected", tracked, ended)
			}
		})
	}
}
