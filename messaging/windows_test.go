package messaging

import (
	"context"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
)

// emitted records the events a Service emits.
type emitted struct{ events []events.Event }

func (e *emitted) Emit(ev events.Event) { e.events = append(e.events, ev) }

// newWindowService is newService with windows, an event recorder and a
// clock the test moves.
func newWindowService(t *testing.T, opts Options) (*Service, *recorder, *emitted, inbox.Store, *time.Time) {
	t.Helper()
	store, err := pebblestore.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	em := &emitted{}
	opts.Store, opts.Emitter = store, em
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	rec := &recorder{}
	s.Attach(rec)
	clock := time.Now()
	s.now = func() time.Time { return clock }
	return s, rec, em, store, &clock
}

func TestDeleteWindow(t *testing.T) {
	for _, tt := range []struct {
		name   string
		window time.Duration
		after  time.Duration // time since sending at the request
		want   string
	}{
		{"no window: a year later", 0, 365 * 24 * time.Hour, ""},
		{"within the window", time.Minute, 59 * time.Second, ""},
		{"at the window's end", time.Minute, time.Minute, ""},
		{"deny: past the window", time.Minute, time.Minute + time.Millisecond, bridge.CodeTooLate},
		{"deny: a day late", 2 * time.Minute, 24 * time.Hour, bridge.CodeTooLate},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, _, _, store, clock := newWindowService(t, Options{DeleteWindow: tt.window})
			ctx := context.Background()
			m, err := s.SendMessage(ctx, alice, bob.UID, "hi", "", "")
			if err != nil {
				t.Fatal(err)
			}
			*clock = time.UnixMilli(m.Time).Add(tt.after)
			err = s.DeleteMessage(ctx, alice, m.ID, "")
			if code(err) != tt.want {
				t.Fatalf("DeleteMessage = %v, want code %q", err, tt.want)
			}
			held, err := store.Read(ctx, bob.UID, 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			kept := len(held) > 0 && held[0].Kind == inbox.KindDirect
			if kept != (tt.want != "") {
				t.Errorf("recipient's inbox = %+v after code %q", held, tt.want)
			}
		})
	}
}

// A read mark reaches the reader's own inbox with its unread total, and
// the back-end as a read event; a refused mark does neither.
func TestMarkReadSyncsOwnDevices(t *testing.T) {
	s, _, em, store, _ := newWindowService(t, Options{})
	ctx := context.Background()
	var last inbox.Message
	for _, text := range []string{"a", "b", "c"} {
		m, err := s.SendMessage(ctx, bob, alice.UID, text, "", "")
		if err != nil {
			t.Fatal(err)
		}
		last = m
	}
	if _, err := s.SendMessage(ctx, Actor{UID: "carol"}, alice.UID, "from carol", "", ""); err != nil {
		t.Fatal(err)
	}
	first, err := store.Read(ctx, alice.UID, 0, 1)
	if err != nil || len(first) != 1 {
		t.Fatal(first, err)
	}

	for _, tt := range []struct {
		name, peer, msgid string
		want              string
	}{
		{"deny: not a uid", "bad uid", last.ID, bridge.CodeBadUID},
		{"deny: yourself", alice.UID, last.ID, bridge.CodeBadUID},
		{"deny: another conversation's message", "carol", last.ID, bridge.CodeNotFound},
		{"deny: unknown msgid", bob.UID, "123", bridge.CodeNotFound},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.MarkRead(ctx, alice, tt.peer, tt.msgid); code(err) != tt.want {
				t.Fatalf("MarkRead = %v, want %q", err, tt.want)
			}
		})
	}
	if len(em.events) != 0 {
		t.Fatalf("refused marks emitted %v", em.events)
	}

	_, before, err := store.Bounds(ctx, alice.UID)
	if err != nil {
		t.Fatal(err)
	}
	for _, step := range []struct {
		msgid  string
		unread int // carol's message stays unread
	}{{first[0].ID, 3}, {last.ID, 1}} {
		if err := s.MarkRead(ctx, alice, bob.UID, step.msgid); err != nil {
			t.Fatal(err)
		}
		got, err := store.Read(ctx, alice.UID, before+1, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Kind != inbox.KindReadSync || got[0].Peer != bob.UID ||
			got[0].Ref != step.msgid || got[0].MsgType != step.unread {
			t.Fatalf("alice's inbox after marking %s = %+v, want one read sync with unread %d", step.msgid, got, step.unread)
		}
		before = got[0].Seq
		ev := em.events[len(em.events)-1]
		if ev.Type != events.TypeRead || ev.Data["uid"] != alice.UID || ev.Data["peer"] != bob.UID ||
			ev.Data["msgid"] != step.msgid || ev.Data["unread"] != step.unread {
			t.Fatalf("event = %+v", ev)
		}
	}
	receipts, err := store.Read(ctx, bob.UID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(receipts); n < 2 || receipts[n-1].Kind != inbox.KindReceipt || receipts[n-1].Peer != alice.UID {
		t.Fatalf("bob's inbox = %+v, want the receipt still", receipts)
	}
}
