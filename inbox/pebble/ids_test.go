package pebblestore

import (
	"context"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// storedIDBound reads keyLastID.
func storedIDBound(t *testing.T, s *Store) uint64 {
	t.Helper()
	v, ok, err := s.getUint("last id", keyLastID)
	if err != nil || !ok {
		t.Fatalf("keyLastID: %d, %v, %v", v, ok, err)
	}
	return v
}

// TestIDReservation: the id bound is written when an id passes it, not
// with every message, stays at or above every id issued, and keeps ids
// increasing across a restart with the clock set back, for a store whose
// bound was written by an older build (the last id itself) too.
func TestIDReservation(t *testing.T) {
	ctx := context.Background()
	t0 := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name string
		old  bool // the bound rewritten as an older build left it: the last id
	}{{"this build", false}, {"bound of an older build", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, inbox.Options{NodeID: 5})
			clock := t0
			s.now = func() time.Time { return clock }

			var last uint64
			appendOne := func() uint64 {
				t.Helper()
				got, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindNotice}})
				if err != nil {
					t.Fatalf("Append: %v", err)
				}
				id := mustParse(t, got[0].ID)
				if id <= last {
					t.Fatalf("id %d after %d: not increasing", id, last)
				}
				last = id
				return id
			}
			appendOne()
			bound := storedIDBound(t, s)
			for range 50 { // within the same millisecond, then across some
				appendOne()
				clock = clock.Add(10 * time.Millisecond)
			}
			if got := storedIDBound(t, s); got != bound {
				t.Errorf("bound rewritten within the reserve: %d, then %d", bound, got)
			}
			if last > bound {
				t.Fatalf("id %d issued above the stored bound %d", last, bound)
			}
			clock = t0.Add(2 * idReserve) // past the reserve: the bound moves with the next append
			appendOne()
			if got := storedIDBound(t, s); got <= bound || got < last {
				t.Errorf("bound after the reserve = %d, want above %d and at least %d", got, bound, last)
			}
			if tc.old {
				if err := s.db.Set(keyLastID, encodeUint(last), pebble.Sync); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}

			s = openStore(t, dir, inbox.Options{NodeID: 5})
			s.now = func() time.Time { return t0.Add(-time.Hour) } // the clock went back
			for range 3 {
				appendOne()
			}
		})
	}
}
