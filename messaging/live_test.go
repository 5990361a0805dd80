package messaging

import (
	"context"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/bridge"
)

// SetRules changes the windows and the block cap for the operations that
// follow; a message sent before the change is judged by the new rules.
func TestSetRules(t *testing.T) {
	s, _, _, _, clock := newWindowService(t, Options{EditWindow: time.Hour, DeleteWindow: time.Hour})
	ctx := context.Background()
	m, err := s.SendMessage(ctx, alice, bob.UID, "hi", "", "")
	if err != nil {
		t.Fatal(err)
	}
	*clock = clock.Add(2 * time.Minute)
	for _, tt := range []struct {
		name      string
		rules     Rules
		edit, del string // the Error codes expected ("" = allowed)
	}{
		{"deny: editing turned off", Rules{EditWindow: 0, DeleteWindow: time.Hour}, bridge.CodeForbidden, ""},
		{"deny: windows shorter than the message's age", Rules{EditWindow: time.Minute, DeleteWindow: time.Minute}, bridge.CodeTooLate, bridge.CodeTooLate},
		{"windows long enough", Rules{EditWindow: time.Hour, DeleteWindow: 0}, "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s.SetRules(tt.rules)
			if got := code(s.EditMessage(ctx, alice, bob.UID, m.ID, "edited")); got != tt.edit {
				t.Errorf("edit: %q, want %q", got, tt.edit)
			}
			if tt.del != "" { // a successful delete would end the table
				if got := code(s.DeleteMessage(ctx, alice, m.ID, bob.UID)); got != tt.del {
					t.Errorf("delete: %q, want %q", got, tt.del)
				}
			}
		})
	}
	s.SetRules(Rules{MaxBlocks: 1})
	if err := s.Block(ctx, alice, "10031"); err != nil {
		t.Fatal(err)
	}
	if got := code(s.Block(ctx, alice, "10041")); got != bridge.CodeTooLarge {
		t.Fatalf("a block past the new cap: %q, want %q", got, bridge.CodeTooLarge)
	}
}

// SetPush turns the push fallback on and off: only messages stored while
// it is on get a push check.
func TestSetPush(t *testing.T) {
	s, _, _, _, _ := newWindowService(t, Options{})
	if s.PushEnabled() {
		t.Fatal("push on without push.after")
	}
	s.SetPush(PushOptions{After: time.Minute, Interval: time.Hour})
	if !s.PushEnabled() || s.request(nil).PushAfter != time.Minute {
		t.Fatalf("after SetPush(1m): enabled %v, PushAfter %v", s.PushEnabled(), s.request(nil).PushAfter)
	}
	s.SetPush(PushOptions{After: 2 * time.Minute, Interval: time.Hour})
	if got := s.request(nil).PushAfter; got != 2*time.Minute {
		t.Fatalf("PushAfter %v after changing it to 2m", got)
	}
	s.SetPush(PushOptions{})
	if s.PushEnabled() || s.request(nil).PushAfter != 0 {
		t.Fatal("push still on after SetPush(off)")
	}
	s.Close()
	s.SetPush(PushOptions{After: time.Minute})
	if s.PushEnabled() {
		t.Fatal("SetPush started the checks of a closed Service")
	}
}
