package storetest

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

var sessionTests = []subtest{
	{"SessionsRoundTrip", testSessionsRoundTrip},
	{"SessionsOwner", testSessionsOwner},
	{"SessionsExpire", testSessionsExpire},
	{"SessionsConcurrentOwners", testSessionsConcurrentOwners},
	{"Retained", testRetained},
}

func sampleSession(id, owner string) inbox.Session {
	return inbox.Session{
		ID: id, Owner: owner, Username: "10021", Listener: "mqtt", ProtocolVersion: 5,
		ExpiryInterval: time.Hour, Node: 3,
		Subscriptions: []inbox.Subscription{
			{Filter: "inbox/10021", QoS: 1},
			{Filter: "sensors/+/temp", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2, Identifier: 7},
		},
	}
}

func testSessionsRoundTrip(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	if _, ok, err := s.Session(ctx, "10021|phone"); err != nil || ok {
		t.Fatalf("Session of an empty store = %v, %v", ok, err)
	}
	a := sampleSession("10021|phone", "conn-1")
	b := sampleSession("10022|tab", "conn-2")
	b.ProtocolVersion, b.Subscriptions, b.Expires = 4, nil, time.Now().Add(time.Hour).UnixMilli()
	for _, sess := range []inbox.Session{a, b} {
		if err := s.PutSession(ctx, sess); err != nil {
			t.Fatalf("PutSession: %v", err)
		}
	}
	got, ok, err := s.Session(ctx, a.ID)
	if err != nil || !ok || !reflect.DeepEqual(got, a) {
		t.Fatalf("Session(%s) = %+v, %v, %v; want %+v", a.ID, got, ok, err, a)
	}
	all, err := s.Sessions(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.SortFunc(all, func(x, y inbox.Session) int { return cmpString(x.ID, y.ID) })
	if !reflect.DeepEqual(all, []inbox.Session{a, b}) {
		t.Fatalf("Sessions = %+v", all)
	}
	// A new connection takes the session over, whatever was stored.
	a2 := a
	a2.Owner, a2.Subscriptions = "conn-3", a.Subscriptions[:1]
	if err := s.PutSession(ctx, a2); err != nil {
		t.Fatal(err)
	}
	if got, _, _ := s.Session(ctx, a.ID); !reflect.DeepEqual(got, a2) {
		t.Fatalf("after takeover: %+v", got)
	}
	if ok, err := s.DeleteSession(ctx, b.ID, ""); err != nil || !ok {
		t.Fatalf("DeleteSession(any owner) = %v, %v", ok, err)
	}
	if ok, err := s.DeleteSession(ctx, b.ID, ""); err != nil || ok {
		t.Fatalf("second DeleteSession = %v, %v; want false", ok, err)
	}
	if all, _ := s.Sessions(ctx); len(all) != 1 || all[0].ID != a.ID {
		t.Fatalf("Sessions after delete = %+v", all)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// Only the connection holding a session may update or end it, so a late
// write of an old connection never undoes the newer one's.
func testSessionsOwner(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	old := sampleSession("u|c", "old")
	if err := s.PutSession(ctx, old); err != nil {
		t.Fatal(err)
	}
	newer := old
	newer.Owner = "new"
	if err := s.PutSession(ctx, newer); err != nil {
		t.Fatal(err)
	}
	late := old
	late.Expires = time.Now().Add(time.Minute).UnixMilli()
	if ok, err := s.UpdateSession(ctx, late); err != nil || ok {
		t.Fatalf("UpdateSession by the old owner = %v, %v; want refused", ok, err)
	}
	if ok, err := s.DeleteSession(ctx, old.ID, "old"); err != nil || ok {
		t.Fatalf("DeleteSession by the old owner = %v, %v; want refused", ok, err)
	}
	if got, ok, _ := s.Session(ctx, old.ID); !ok || got.Owner != "new" || got.Expires != 0 {
		t.Fatalf("session after refused writes = %+v, %v", got, ok)
	}
	upd := newer
	upd.Subscriptions = nil
	if ok, err := s.UpdateSession(ctx, upd); err != nil || !ok {
		t.Fatalf("UpdateSession by the owner = %v, %v", ok, err)
	}
	if got, _, _ := s.Session(ctx, old.ID); len(got.Subscriptions) != 0 {
		t.Fatalf("update not stored: %+v", got)
	}
	missing := sampleSession("nobody|x", "any")
	if ok, err := s.UpdateSession(ctx, missing); err != nil || ok {
		t.Fatalf("UpdateSession of a missing session = %v, %v; want refused", ok, err)
	}
	if _, ok, _ := s.Session(ctx, missing.ID); ok {
		t.Fatal("a refused update created the session")
	}
	if ok, err := s.DeleteSession(ctx, old.ID, "new"); err != nil || !ok {
		t.Fatalf("DeleteSession by the owner = %v, %v", ok, err)
	}
}

func testSessionsExpire(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	now := time.UnixMilli(time.Now().UnixMilli())
	put := func(id string, expires time.Time) inbox.Session {
		t.Helper()
		sess := sampleSession(id, "o-"+id)
		if !expires.IsZero() {
			sess.Expires = expires.UnixMilli()
		}
		if err := s.PutSession(ctx, sess); err != nil {
			t.Fatal(err)
		}
		return sess
	}
	put("held", time.Time{})
	put("soon", now.Add(time.Second))
	put("later", now.Add(time.Hour))
	moved := put("moved", now.Add(time.Second))
	// Reconnected: held again, so its old expiry must not end it.
	moved.Owner, moved.Expires = "o-moved-2", 0
	if err := s.PutSession(ctx, moved); err != nil {
		t.Fatal(err)
	}
	// Disconnected again, later: the new expiry replaces the old.
	ext := put("extended", now.Add(time.Second))
	ext.Expires = now.Add(2 * time.Hour).UnixMilli()
	if ok, err := s.UpdateSession(ctx, ext); err != nil || !ok {
		t.Fatal(ok, err)
	}
	if ids, err := s.ExpireSessions(ctx, now); err != nil || len(ids) != 0 {
		t.Fatalf("ExpireSessions(now) = %v, %v; want none", ids, err)
	}
	ids, err := s.ExpireSessions(ctx, now.Add(time.Second))
	if err != nil || fmt.Sprint(ids) != "[soon]" {
		t.Fatalf("ExpireSessions(+1s) = %v, %v; want [soon]", ids, err)
	}
	if _, ok, _ := s.Session(ctx, "soon"); ok {
		t.Fatal("expired session still stored")
	}
	if ids, _ := s.ExpireSessions(ctx, now.Add(time.Second)); len(ids) != 0 {
		t.Fatalf("expired twice: %v", ids)
	}
	ids, err = s.ExpireSessions(ctx, now.Add(3*time.Hour))
	slices.Sort(ids)
	if err != nil || fmt.Sprint(ids) != "[extended later]" {
		t.Fatalf("ExpireSessions(+3h) = %v, %v", ids, err)
	}
	all, _ := s.Sessions(ctx)
	var left []string
	for _, x := range all {
		left = append(left, x.ID)
	}
	slices.Sort(left)
	if fmt.Sprint(left) != "[held moved]" {
		t.Fatalf("sessions left = %v; want the two held ones", left)
	}
	if !(inbox.Session{Expires: now.UnixMilli()}).Expired(now) || (inbox.Session{}).Expired(now) {
		t.Fatal("Session.Expired is wrong")
	}
}

// Racing connections of one session: exactly the last PutSession's owner
// holds it, and updates of every other owner are refused.
func testSessionsConcurrentOwners(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	const n = 20
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess := sampleSession("race|x", fmt.Sprintf("o%d", i))
			if err := s.PutSession(ctx, sess); err != nil {
				t.Error(err)
				return
			}
			sess.Expires = time.Now().Add(time.Hour).UnixMilli()
			if _, err := s.UpdateSession(ctx, sess); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	got, ok, err := s.Session(ctx, "race|x")
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	// Whoever holds it last, its expiry index entry is the one stored:
	// expiring far ahead removes exactly this one session.
	ids, err := s.ExpireSessions(ctx, time.UnixMilli(got.Expires+1))
	if got.Expires != 0 && (err != nil || fmt.Sprint(ids) != "[race|x]") {
		t.Fatalf("ExpireSessions = %v, %v", ids, err)
	}
}

func testRetained(t *testing.T, open Opener) {
	ctx := context.Background()
	s := open(t, inbox.Options{})
	if m, err := s.RetainedMessages(ctx); err != nil || len(m) != 0 {
		t.Fatalf("RetainedMessages of an empty store = %v, %v", m, err)
	}
	for topic, v := range map[string]string{"a/b": "one", "a/c": "two", "$weird/ü": "\x00bin\xff"} {
		if err := s.PutRetained(ctx, topic, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.PutRetained(ctx, "a/b", []byte("replaced")); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRetained(ctx, "a/c"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteRetained(ctx, "never/set"); err != nil {
		t.Fatalf("deleting a missing topic: %v", err)
	}
	m, err := s.RetainedMessages(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{"a/b": []byte("replaced"), "$weird/ü": []byte("\x00bin\xff")}
	if !reflect.DeepEqual(m, want) {
		t.Fatalf("RetainedMessages = %q, want %q", m, want)
	}
}
