package legacy

import (
	"context"
	"fmt"
	"testing"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// Replace writes only while the field is what the import read: an entry
// the legacy server appended meanwhile is never lost. Scan sees every
// field once, across several HSCAN rounds.
func TestRedisSource(t *testing.T) {
	c := redistest.Start(t, redistest.Config{}).Client(t)
	src := RedisSource{Client: c}
	ctx := context.Background()
	for i := range 250 {
		if err := c.HSet(ctx, "h", fmt.Sprint(i), "v").Err(); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	if err := src.Scan(ctx, "h", func(f string, _ []byte) error { seen[f]++; return nil }); err != nil {
		t.Fatal(err)
	}
	if n, _ := src.Len(ctx, "h"); len(seen) != 250 || n != 250 {
		t.Fatalf("Scan saw %d fields, Len %d, want 250", len(seen), n)
	}

	for _, tc := range []struct {
		name, old, value string
		changed          bool
		after            string // "" = deleted
	}{
		{"stale old: nothing written", "[1]", "", true, "[1,2]"},
		{"trim", "[1,2]", "[2]", false, "[2]"},
		{"delete", "[2]", "", false, ""},
		{"gone meanwhile", "[2]", "", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "stale old: nothing written" {
				if err := c.HSet(ctx, "r", "10021", "[1,2]").Err(); err != nil {
					t.Fatal(err)
				}
			}
			changed, err := src.Replace(ctx, "r", "10021", []byte(tc.old), []byte(tc.value))
			if err != nil || changed != tc.changed {
				t.Fatalf("Replace = %v, %v; want changed %v", changed, err, tc.changed)
			}
			if got := c.HGet(ctx, "r", "10021").Val(); got != tc.after {
				t.Fatalf("field after Replace = %q, want %q", got, tc.after)
			}
		})
	}
}
