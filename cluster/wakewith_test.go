package cluster_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/cluster"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// offerer is a recorder that takes a wake's entries (cluster.Offerer).
type offerer struct {
	recorder
}

func (o *offerer) OfferLocal(uid string, entries []json.RawMessage) {
	var texts []string
	for _, e := range entries {
		texts = append(texts, string(e))
	}
	o.add(event{Kind: "offer", UID: uid, Reason: strings.Join(texts, " ")})
}

// A wake with entries hands them to a Local that takes them, and is a
// plain wake for the uids without any and at a Local that does not.
func TestWakeWithEntries(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	prefix := newPrefix()
	a := join(t, srv, prefix, 1)
	plain := join(t, srv, prefix, 3) // its Local has no OfferLocal
	off := &offerer{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	b, err := cluster.Join(ctx, cluster.Options{Client: srv.Client(t), Prefix: prefix, NodeID: 2, Local: off,
		Log: (&logBuffer{}).Logger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })

	entries := map[string][]json.RawMessage{"10001": {json.RawMessage(`{"Seq":1}`), json.RawMessage(`{"Seq":2}`)}}
	if err := a.WakeWith(ctx, []string{"10001", "10002"}, entries); err != nil {
		t.Fatal(err)
	}
	syncSignals(t, a.Node, &off.recorder, plain.local)
	want := []event{{Kind: "offer", UID: "10001", Reason: `{"Seq":1} {"Seq":2}`}, {Kind: "wake", UID: "10002"}}
	if got, _ := off.snapshot(); !equalEvents(got, want) {
		t.Errorf("offering node got %v, want %v", got, want)
	}
	want = []event{{Kind: "wake", UID: "10001"}, {Kind: "wake", UID: "10002"}}
	if got, _ := plain.local.snapshot(); !equalEvents(got, want) {
		t.Errorf("plain node got %v, want %v", got, want)
	}
}

func equalEvents(a, b []event) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].String() != b[i].String() {
			return false
		}
	}
	return true
}
