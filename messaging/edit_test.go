package messaging

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
)

func TestEditMessage(t *testing.T) {
	const window = time.Hour
	for _, tt := range []struct {
		name   string
		window time.Duration
		by     Actor
		to     string
		msgid  string // "" the message alice sent to bob
		msg    string
		after  time.Duration // time since sending at the request
		want   string
	}{
		{name: "edited", window: window, by: alice, to: bob.UID, msg: "fixed"},
		{name: "at the window's end", window: window, by: alice, to: bob.UID, msg: "fixed", after: window},
		{name: "deny: past the window", window: window, by: alice, to: bob.UID, msg: "fixed", after: window + time.Millisecond, want: bridge.CodeTooLate},
		{name: "deny: editing turned off", window: 0, by: alice, to: bob.UID, msg: "fixed", want: bridge.CodeForbidden},
		{name: "deny: the recipient", window: window, by: bob, to: alice.UID, msg: "fixed", want: bridge.CodeForbidden},
		{name: "deny: someone else", window: window, by: Actor{UID: "carol"}, to: bob.UID, msg: "fixed", want: bridge.CodeNotFound},
		{name: "deny: another recipient named", window: window, by: alice, to: "carol", msg: "fixed", want: bridge.CodeNotFound},
		{name: "deny: unknown msgid", window: window, by: alice, to: bob.UID, msgid: "123", msg: "fixed", want: bridge.CodeNotFound},
		{name: "deny: empty", window: window, by: alice, to: bob.UID, msg: "", want: bridge.CodeEmptyMessage},
		{name: "deny: over the limit", window: window, by: alice, to: bob.UID, msg: strings.Repeat("x", 17), want: bridge.CodeTooLarge},
		{name: "deny: bad uid", window: window, by: alice, to: "a b", msg: "fixed", want: bridge.CodeBadUID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, rec, _, store, clock := newWindowService(t, Options{EditWindow: tt.window, Limits: bridge.Limits{MaxContent: 16}})
			ctx := context.Background()
			m, err := s.SendMessage(ctx, alice, bob.UID, "teh text", "x", "")
			if err != nil {
				t.Fatal(err)
			}
			msgid := tt.msgid
			if msgid == "" {
				msgid = m.ID
			}
			*clock = time.UnixMilli(m.Time).Add(tt.after)
			handedOn := len(rec.stored)
			err = s.EditMessage(ctx, tt.by, tt.to, msgid, tt.msg)
			if code(err) != tt.want {
				t.Fatalf("EditMessage = %v, want code %q", err, tt.want)
			}
			for _, uid := range []string{alice.UID, bob.UID} {
				held, err := store.Read(ctx, uid, 0, 10)
				if err != nil {
					t.Fatal(err)
				}
				if tt.want != "" {
					if len(held) != 1 || held[0].Content != "teh text" || held[0].Edited != 0 {
						t.Fatalf("%s's inbox after a refused edit = %+v", uid, held)
					}
					continue
				}
				// The copy holds the new text, stamped with the EditMsg's time.
				if len(held) != 2 || held[0].Content != "fixed" || held[0].Extra != "x" || held[1].Kind != inbox.KindEdit ||
					held[1].Ref != m.ID || held[1].Content != "fixed" || held[0].Edited != held[1].Time {
					t.Fatalf("%s's inbox after the edit = %+v", uid, held)
				}
			}
			if tt.want != "" && len(rec.stored) != handedOn {
				t.Errorf("a refused edit was handed on: %v", rec.stored[handedOn:])
			}
		})
	}
}
