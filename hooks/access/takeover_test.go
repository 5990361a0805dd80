package access

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A second login with the same account and client id takes the session
// over: the old connection is told BeforeTakeover while it can still be
// written to, then ended the way its protocol version allows (MQTT 5:
// DISCONNECT 0x8E; 3.1.1: a closed socket and never the bytes e0 00), and
// the new connection is the one mochi keeps, also after the old one's
// cleanup has run (mochi v2.7.9 would delete the new client there when the
// old session was non-persistent).
func TestTakeover_SameAccountSameClientID(t *testing.T) {
	for _, tc := range []struct {
		name           string
		old, new       byte
		oldPersistent  bool
		newResumes     bool // new connection asks to resume (clean false)
		wantDisconnect bool // the old connection reads DISCONNECT 0x8E
		wantPresent    bool // CONNACK session present for the new one
	}{
		{name: "5.0 expiry 0 by 5.0", old: v5, new: v5, wantDisconnect: true},
		{name: "5.0 persistent resumed by 5.0", old: v5, new: v5, oldPersistent: true, newResumes: true, wantDisconnect: true, wantPresent: true},
		{name: "5.0 persistent by 5.0 clean start", old: v5, new: v5, oldPersistent: true, wantDisconnect: true},
		{name: "3.1.1 clean by 3.1.1", old: v311, new: v311},
		{name: "3.1.1 persistent resumed by 3.1.1", old: v311, new: v311, oldPersistent: true, newResumes: true, wantPresent: true},
		{name: "3.1.1 clean by 5.0", old: v311, new: v5},
		{name: "5.0 expiry 0 by 3.1.1", old: v5, new: v311, wantDisconnect: true},
		{name: "3.1.1 persistent by 5.0 clean start", old: v311, new: v5, oldPersistent: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, setup{})
			rec := &establishRecorder{s: f.s}
			if err := f.s.AddHook(rec, nil); err != nil { // runs after the access hook
				t.Fatal(err)
			}
			tok := f.token(t, "10001")
			id := internalID("10001", "phone")
			oldLogin := login{user: "10001", pass: tok, id: "phone", clean: !tc.oldPersistent}
			if tc.oldPersistent {
				oldLogin.expiry = 3600
			}
			oldW := f.connect(t, tc.old, oldLogin)
			if codes := oldW.subscribe(t, 1, "inbox/10001"); codes[0] != granted1 {
				t.Fatalf("old: own inbox %#x", codes[0])
			}
			oldCl := f.client(t, id)

			newLogin := login{user: "10001", pass: tok, id: "phone", clean: !tc.newResumes}
			if tc.newResumes {
				newLogin.expiry = 3600
			}
			newW, ack := f.dial(t, tc.new, newLogin)
			if ack.ReasonCode != 0 || ack.SessionPresent != tc.wantPresent {
				t.Fatalf("new CONNACK code %#x present %v, want 0 present %v", ack.ReasonCode, ack.SessionPresent, tc.wantPresent)
			}

			// When mochi goes on to take the session over, a non-persistent
			// old session is gone already, its cleanup done (so it cannot
			// delete the new client); a persistent one is left to mochi.
			seen := rec.list()
			if len(seen) != 2 {
				t.Fatalf("%d sessions established, want 2", len(seen))
			}
			if tc.oldPersistent {
				if seen[1] != oldCl {
					t.Fatalf("persistent old session not registered when mochi took over (got %p)", seen[1])
				}
			} else if seen[1] != nil {
				t.Fatalf("non-persistent old session still registered (%p, old %p) when mochi took over", seen[1], oldCl)
			}

			// The old connection: DISCONNECT 0x8E or nothing, then closed.
			rest := oldW.rest(t)
			switch {
			case tc.wantDisconnect:
				if len(rest) != 1 || rest[0].FixedHeader.Type != packets.Disconnect || rest[0].ReasonCode != packets.ErrSessionTakenOver.Code {
					t.Fatalf("old connection got %s, want one DISCONNECT 0x8E", describe(rest))
				}
			case len(rest) != 0:
				t.Fatalf("old 3.1.1 connection got %s, want a closed socket only", describe(rest))
			}
			oldW.finished(t)

			takeovers := f.takeoverList()
			if len(takeovers) != 1 || takeovers[0].old != oldCl {
				t.Fatalf("BeforeTakeover calls %+v, want one with the old client", takeovers)
			}
			if takeovers[0].wasClosed {
				t.Fatal("BeforeTakeover got an old connection that was already closed")
			}
			if takeovers[0].internalID != id {
				t.Fatalf("BeforeTakeover got id %q, want %q", takeovers[0].internalID, id)
			}

			// The new client is the one mochi keeps, after the old cleanup.
			newCl, ok := f.s.Clients.Get(id)
			if !ok || newCl == oldCl || newCl.Closed() {
				t.Fatalf("after the takeover the registered client is %p (ok %v), old %p", newCl, ok, oldCl)
			}
			if _, ok := f.h.Identity(oldCl); ok {
				t.Fatal("the old connection's identity outlived it")
			}
			if id, ok := f.h.Identity(newCl); !ok || id.UID != "10001" || id.ClientID != "phone" {
				t.Fatalf("new identity %+v %v", id, ok)
			}
			_, inherited := newCl.State.Subscriptions.Get("inbox/10001")
			if inherited != tc.wantPresent {
				t.Fatalf("inbox subscription inherited = %v, want %v", inherited, tc.wantPresent)
			}
			if !inherited {
				if codes := newW.subscribe(t, 1, "inbox/10001"); codes[0] != granted1 {
					t.Fatalf("new: own inbox %#x", codes[0])
				}
			}
			f.publish(t, "inbox/10001", "after the takeover")
			if pk := newW.nextPublish(t); string(pk.Payload) != "after the takeover" {
				t.Fatalf("new connection got %q", pk.Payload)
			}
		})
	}
}

// Logins that do not share the internal session id never take each other
// over: another account with the same client id (the id is namespaced by
// account), an anonymous client whose client id looks like an internal id,
// and the same account with another client id (single login is the
// delivery hook's business).
func TestTakeover_NotAcrossAccountsOrClientIDs(t *testing.T) {
	f := newFixture(t, setup{allowAnonymous: true})
	first := f.connect(t, v311, login{user: "10001", pass: f.token(t, "10001"), id: "shared"})
	logins := []struct {
		name    string
		version byte
		l       login
		id      string
	}{
		{"another user, same client id", v5, login{user: "10002", pass: f.token(t, "10002"), id: "shared", clean: true}, internalID("10002", "shared")},
		{"admin account, same client id", v311, login{user: opsName, pass: opsPassword, id: "shared", clean: true}, internalID(opsName, "shared")},
		{"anonymous, same client id", v311, login{id: "shared", clean: true}, internalID("", "shared")},
		{"anonymous, client id that spells the internal id", v5, login{id: "10001|shared", clean: true}, "|10001|shared"},
		{"same user, another client id", v5, login{user: "10001", pass: f.token(t, "10001"), id: "tablet", clean: true}, internalID("10001", "tablet")},
	}
	conns := []*wire{first}
	for _, tc := range logins {
		// Connected by the parent test: the connections must outlive
		// the subtest that checks them.
		conns = append(conns, f.connect(t, tc.version, tc.l))
		t.Run(tc.name, func(t *testing.T) {
			if _, ok := f.s.Clients.Get(tc.id); !ok {
				t.Fatalf("no client %q", tc.id)
			}
			if n := len(f.takeoverList()); n != 0 {
				t.Fatalf("BeforeTakeover called %d times", n)
			}
			for _, c := range conns {
				c.ping(t) // every earlier connection is still served
			}
		})
	}
	if cl := f.client(t, internalID("10001", "shared")); cl.Closed() {
		t.Fatal("the first connection was closed")
	}
}

// OnSessionEstablish with no session of the same id, or with itself, does
// nothing: no BeforeTakeover, nothing stopped.
func TestOnSessionEstablish_NoOldSession(t *testing.T) {
	f := newFixture(t, setup{})
	cl := f.mustAuthed(t, "10001", f.token(t, "10001"), "phone")
	f.h.OnSessionEstablish(cl, packets.Packet{})
	f.s.Clients.Add(cl)
	f.h.OnSessionEstablish(cl, packets.Packet{})
	if n := len(f.takeoverList()); n != 0 || cl.Closed() {
		t.Fatalf("BeforeTakeover calls %d, closed %v; want none, open", n, cl.Closed())
	}
}

// EndConnection: an MQTT 5 client reads DISCONNECT with the code and then
// a closed socket; a 3.1.1 client only a closed socket (3.1.1 has no
// server DISCONNECT). Either way the connection ends with the code as its
// cause.
func TestEndConnection(t *testing.T) {
	for _, tc := range []struct {
		version byte
		code    packets.Code
	}{
		{v5, packets.ErrNotAuthorized},
		{v5, packets.ErrSessionTakenOver},
		{v311, packets.ErrNotAuthorized},
		{v311, packets.ErrServerShuttingDown},
	} {
		t.Run(versionName(tc.version)+"/"+tc.code.Reason, func(t *testing.T) {
			f := newFixture(t, setup{})
			w := f.connect(t, tc.version, login{user: "10001", pass: f.token(t, "10001"), id: "phone", clean: true})
			cl := f.client(t, internalID("10001", "phone"))
			EndConnection(f.s, cl, tc.code)
			rest := w.rest(t)
			if tc.version == v5 {
				if len(rest) != 1 || rest[0].FixedHeader.Type != packets.Disconnect || rest[0].ReasonCode != tc.code.Code {
					t.Fatalf("got %s, want DISCONNECT %#x", describe(rest), tc.code.Code)
				}
			} else if len(rest) != 0 {
				t.Fatalf("3.1.1 client got %s, want a closed socket only", describe(rest))
			}
			if !cl.Closed() {
				t.Fatal("client not closed")
			}
			var code packets.Code
			if !errors.As(cl.StopCause(), &code) || code != tc.code {
				t.Fatalf("stop cause %v, want %v", cl.StopCause(), tc.code)
			}
			w.finished(t)
		})
	}
}

// SessionExpires: MQTT 5 by session expiry interval 0, 3.1.1 by clean session.
func TestSessionExpires(t *testing.T) {
	s := mqtt.New(&mqtt.Options{Logger: discardLog})
	for _, tc := range []struct {
		name    string
		version byte
		clean   bool
		expiry  uint32
		want    bool
	}{
		{"5.0 expiry 0", v5, false, 0, true},
		{"5.0 expiry 0, clean start", v5, true, 0, true},
		{"5.0 expiry 60", v5, false, 60, false},
		{"5.0 expiry 60, clean start", v5, true, 60, false},
		{"3.1.1 clean session", v311, true, 0, true},
		{"3.1.1 persistent", v311, false, 0, false},
		{"3.1.1 ignores an expiry", v311, false, 60, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := s.NewClient(nil, "t", "c", false)
			cl.Properties.ProtocolVersion = tc.version
			cl.Properties.Clean = tc.clean
			cl.Properties.Props.SessionExpiryInterval = tc.expiry
			if got := SessionExpires(cl); got != tc.want {
				t.Fatalf("SessionExpires = %v, want %v", got, tc.want)
			}
		})
	}
}

// establishRecorder is a hook that runs after the access hook's
// OnSessionEstablish and records which client the server then had
// registered under the new client's id (nil for none).
type establishRecorder struct {
	mqtt.HookBase
	s    *mqtt.Server
	mu   sync.Mutex
	seen []*mqtt.Client
}

func (r *establishRecorder) ID() string { return "establish-recorder" }

func (r *establishRecorder) Provides(b byte) bool { return b == mqtt.OnSessionEstablish }

func (r *establishRecorder) OnSessionEstablish(cl *mqtt.Client, _ packets.Packet) {
	old, _ := r.s.Clients.Get(cl.ID)
	r.mu.Lock()
	r.seen = append(r.seen, old)
	r.mu.Unlock()
}

func (r *establishRecorder) list() []*mqtt.Client {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*mqtt.Client(nil), r.seen...)
}

// describe lists packets for failure messages.
func describe(pks []packets.Packet) string {
	if len(pks) == 0 {
		return "nothing"
	}
	var parts []string
	for _, pk := range pks {
		parts = append(parts, fmt.Sprintf("type %d code %#x", pk.FixedHeader.Type, pk.ReasonCode))
	}
	return strings.Join(parts, ", ")
}
