package messaging

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/bridge"
)

func TestTyping(t *testing.T) {
	for _, tt := range []struct {
		name, to string
		want     string
	}{
		{"signalled", bob.UID, ""},
		{"deny: bad uid", "a b", bridge.CodeBadUID},
		{"deny: to yourself", alice.UID, bridge.CodeBadUID},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s, rec, _, store, clock := newWindowService(t, Options{})
			*clock = time.UnixMilli(1764950400123)
			if err := s.Typing(context.Background(), alice, tt.to); code(err) != tt.want {
				t.Fatalf("Typing = %v, want %q", err, tt.want)
			}
			want := []string(nil)
			if tt.want == "" {
				want = []string{bob.UID + " " + string(bridge.Typing(alice.UID, 1764950400123))}
			}
			if strings.Join(rec.live, "\n") != strings.Join(want, "\n") {
				t.Fatalf("delivered %q, want %q", rec.live, want)
			}
			if _, last, err := store.Bounds(context.Background(), tt.to); err == nil && last != 0 {
				t.Fatalf("a typing signal was stored (last seq %d)", last)
			}
		})
	}
}

// Past the burst a sender's signals are refused; other senders are not
// affected. The calls take microseconds against a refill of one a second,
// so at most one more can get through however slow the machine.
func TestTypingRateLimited(t *testing.T) {
	s, rec, _, _, _ := newWindowService(t, Options{})
	ctx := context.Background()
	refused := 0
	for range typingBurst + 5 {
		if err := s.Typing(ctx, alice, bob.UID); code(err) == bridge.CodeRateLimited {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if refused < 4 {
		t.Fatalf("%d of %d signals refused, want at least 4", refused, typingBurst+5)
	}
	if len(rec.live) != typingBurst+5-refused {
		t.Fatalf("%d delivered, %d refused", len(rec.live), refused)
	}
	if err := s.Typing(ctx, Actor{UID: "carol"}, bob.UID); err != nil {
		t.Fatalf("another sender: %v", err)
	}
}
