package messaging

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
)

// recorder is the delivery side as the tests see it: what was handed on.
type recorder struct {
	mu     sync.Mutex
	stored [][]inbox.Message
	live   []string
}

func (r *recorder) Stored(m []inbox.Message) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.stored = append(r.stored, m)
}

func (r *recorder) Live(uids []string, envelope []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.live = append(r.live, strings.Join(uids, ",")+" "+string(envelope))
	return nil
}

func (r *recorder) ProfileChanged(string, string, string) {}
func (r *recorder) Pushed(string, uint64)                 {}

func newService(t *testing.T) (*Service, *recorder, inbox.Store) {
	t.Helper()
	store, err := pebblestore.Open(t.TempDir(), inbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	s, err := New(Options{Store: store, Limits: bridge.Limits{MaxContent: 16}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	rec := &recorder{}
	s.Attach(rec)
	return s, rec, store
}

var (
	alice = Actor{UID: "10001", Role: acl.RoleUser, Nickname: "A"}
	bob   = Actor{UID: "10021", Role: acl.RoleUser}
	admin = Actor{UID: "admin", Role: acl.RoleAdmin}
)

func code(err error) string {
	var be *bridge.Error
	if errors.As(err, &be) {
		return be.Code
	}
	if err != nil {
		return "internal: " + err.Error()
	}
	return ""
}

func TestSendMessage(t *testing.T) {
	for _, tt := range []struct {
		name, to, msg string
		want          string // Error code; "" stored
	}{
		{"stored", "10021", "hi", ""},
		{"deny: invalid uid", "bad uid", "hi", bridge.CodeBadUID},
		{"deny: to yourself", "10001", "hi", bridge.CodeBadUID},
		{"deny: empty", "10021", "", bridge.CodeEmptyMessage},
		{"deny: over the limit", "10021", strings.Repeat("x", 17), bridge.CodeTooLarge},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, rec, store := newService(t)
			m, err := s.SendMessage(context.Background(), alice, tt.to, tt.msg, "", "")
			if code(err) != tt.want {
				t.Fatalf("SendMessage = %v, want code %q", err, tt.want)
			}
			if tt.want != "" {
				if len(rec.stored) != 0 {
					t.Errorf("a refused request was handed on: %v", rec.stored)
				}
				return
			}
			if m.UID != "10021" || m.Peer != "10001" || m.Nickname != "A" {
				t.Errorf("stored %+v: want the recipient's copy, sender and nickname stamped", m)
			}
			if len(rec.stored) != 1 || len(rec.stored[0]) != 2 {
				t.Fatalf("handed on %v, want both copies once", rec.stored)
			}
			if got, _ := store.Read(context.Background(), "10001", 0, 10); len(got) != 1 || got[0].Kind != inbox.KindSent {
				t.Errorf("sender's inbox = %+v, want its copy", got)
			}
		})
	}
}

// A resend (same cid and content) is answered with the original and not
// handed on again; the same cid with other content is a new message.
func TestSendMessageResend(t *testing.T) {
	s, rec, store := newService(t)
	ctx := context.Background()
	first, err := s.SendMessage(ctx, alice, "10021", "hi", "", "c-1")
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.SendMessage(ctx, alice, "10021", "hi", "", "c-1")
	if err != nil || again.ID != first.ID || again.Content != "hi" {
		t.Fatalf("resend = %+v, %v, want the original %s", again, err, first.ID)
	}
	other, err := s.SendMessage(ctx, alice, "10021", "changed", "", "c-1")
	if err != nil || other.ID == first.ID {
		t.Fatalf("same cid, other content = %+v, %v, want a new message", other, err)
	}
	if len(rec.stored) != 2 {
		t.Errorf("handed on %d times, want 2 (the resend was not new)", len(rec.stored))
	}
	if got, _ := store.Read(ctx, "10021", 0, 10); len(got) != 2 {
		t.Errorf("recipient holds %d messages, want 2", len(got))
	}
}

func TestDeleteAndMarkRead(t *testing.T) {
	s, _, store := newService(t)
	ctx := context.Background()
	m, err := s.SendMessage(ctx, alice, "10021", "hi", "", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		err  error
		want string
	}{
		{"deny: the recipient deletes", s.DeleteMessage(ctx, bob, m.ID, ""), bridge.CodeForbidden},
		{"deny: an unknown id", s.DeleteMessage(ctx, alice, "123", ""), bridge.CodeNotFound},
		{"deny: another peer", s.DeleteMessage(ctx, alice, m.ID, "10099"), bridge.CodeNotFound},
		{"deny: read a message of another conversation", s.MarkRead(ctx, bob, "10099", m.ID), bridge.CodeNotFound},
		{"deny: read your own conversation with yourself", s.MarkRead(ctx, bob, "10021", m.ID), bridge.CodeBadUID},
		{"read", s.MarkRead(ctx, bob, "10001", m.ID), ""},
		{"delete by the sender", s.DeleteMessage(ctx, alice, m.ID, "10021"), ""},
	} {
		if code(tt.err) != tt.want {
			t.Errorf("%s: %v, want code %q", tt.name, tt.err, tt.want)
		}
	}
	if mark, _ := store.ReadMark(ctx, "10021", "10001"); mark != m.Seq {
		t.Errorf("bob's read mark = %d, want %d", mark, m.Seq)
	}
	if _, ok, _ := inbox.FindByID(ctx, store, "10021", m.ID); ok {
		t.Error("the deleted message is still in the recipient's inbox")
	}
}

func TestSendNotice(t *testing.T) {
	s, rec, store := newService(t)
	ctx := context.Background()
	many := make([]string, MaxNoticeRecipients+1)
	for i := range many {
		many[i] = "u" + strings.Repeat("1", 1+i%5)
	}
	for _, tt := range []struct {
		name string
		by   Actor
		n    Notice
		want string
	}{
		{"deny: a user", alice, Notice{UIDs: []string{"10021"}, Content: "x"}, bridge.CodeForbidden},
		{"deny: empty", admin, Notice{UIDs: []string{"10021"}}, bridge.CodeEmptyMessage},
		{"deny: too many recipients", admin, Notice{UIDs: many, Content: "x"}, bridge.CodeTooLarge},
		{"deny: an invalid uid", admin, Notice{UIDs: []string{"10021", "bad uid"}, Content: "x"}, bridge.CodeBadUID},
		{"to two, one named twice", admin, Notice{UIDs: []string{"10021", "10031", "10021"}, Content: "x"}, ""},
		{"to everyone", admin, Notice{Content: "all"}, ""},
	} {
		m, err := s.SendNotice(ctx, tt.by, tt.n)
		if code(err) != tt.want {
			t.Errorf("%s: %v, want code %q", tt.name, err, tt.want)
		}
		if err == nil && !inbox.ValidID(m.ID) {
			t.Errorf("%s: returned msgid %q, want the stored notice's id", tt.name, m.ID)
		}
		if err == nil && len(tt.n.UIDs) > 0 {
			for _, uid := range tt.n.UIDs {
				if got, ok, _ := inbox.FindByID(ctx, store, uid, m.ID); !ok || got.Content != tt.n.Content {
					t.Errorf("%s: inbox of %s holds no notice %s", tt.name, uid, m.ID)
				}
			}
		}
	}
	if len(rec.stored) != 2 || len(rec.stored[0]) != 2 || rec.stored[1][0].UID != inbox.BroadcastInbox {
		t.Errorf("handed on %+v, want one copy each for 10021 and 10031, then the broadcast", rec.stored)
	}
	if got, _ := store.Read(ctx, inbox.BroadcastInbox, 0, 10); len(got) != 1 || got[0].Content != "all" {
		t.Errorf("broadcast log = %+v", got)
	}
	if err := s.SendLiveNotice(Notice{UIDs: []string{"10021"}, Content: "now"}); err != nil {
		t.Fatal(err)
	}
	if len(rec.live) != 1 || !strings.Contains(rec.live[0], `"ct":"now"`) || !strings.HasPrefix(rec.live[0], "10021 ") {
		t.Errorf("live = %v", rec.live)
	}
}
