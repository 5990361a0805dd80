package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// testdata/layout2 is a store written by the build before layout 3 (heads
// written with every append, the last id itself under "i"), with
// MaxPerInbox 5 and node 1: seven direct messages alice -> bob with cids
// c-1..c-7 (so both inboxes overflowed to Seqs 3..7), alice's Seq 4
// deleted, one notice to carol, and bob's cursor at 4.

// openLayout2 opens a copy of the fixture (Open writes to it), marked
// layout version first: layout 3 differs from 2 only in the heads it
// writes, so the fixture marked 3 is a store of layout 3 too.
func openLayout2(t *testing.T, version uint64) *Store {
	t.Helper()
	dir := t.TempDir()
	files, err := os.ReadDir("testdata/layout2")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join("testdata/layout2", f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	var before int
	for _, p := range []byte{prefixRequestV3, prefixRequestAgeV3} {
		n, err := countRaw(db, p)
		if err != nil {
			t.Fatal(err)
		}
		before += n
	}
	if before != 2*7 { // bob's seven requests, a record and an age key each
		t.Fatalf("the fixture holds %d keys of layout 3's request records, want 14", before)
	}
	if err := errors.Join(db.Set(keyVersion, encodeUint(version), pebble.Sync), db.Close()); err != nil {
		t.Fatal(err)
	}
	return openStore(t, dir, inbox.Options{NodeID: 1, MaxPerInbox: 5})
}

func countRaw(db *pebble.DB, prefix byte) (int, error) {
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefix}, UpperBound: []byte{prefix + 1}})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// TestLayout2Store: a store of layout 2 or 3 reads as it was written, is
// marked layout 4 (so a build of an older layout refuses it), has its
// request records rewritten, and goes on from where it was: Seqs, ids,
// dedupe records, cursors.
func TestLayout2Store(t *testing.T) {
	for _, v := range []uint64{2, 3} {
		t.Run(fmt.Sprint("layout", v), func(t *testing.T) { testLayoutStore(t, v) })
	}
}

func testLayoutStore(t *testing.T, version uint64) {
	ctx := context.Background()
	s := openLayout2(t, version)
	if v, _, err := s.getUint("layout version", keyVersion); err != nil || v != layoutVersion {
		t.Fatalf("layout version after open = %d, %v; want %d", v, err, layoutVersion)
	}
	for _, p := range []byte{prefixRequestV3, prefixRequestAgeV3} {
		if n, err := countPrefix(s, []byte{p}); err != nil || n != 0 {
			t.Errorf("%d keys of prefix %q left after the upgrade (%v), want 0", n, p, err)
		}
	}
	if keys, _ := requestsOf(t, s, "bob"); len(keys) != 7 {
		t.Errorf("bob has %d request records after the upgrade, want 7: %q", len(keys), keys)
	}
	checkConsistent(t, s)
	for _, c := range []struct {
		uid         string
		first, last uint64
		seqs        []uint64
	}{
		{"bob", 3, 7, []uint64{3, 4, 5, 6, 7}},
		{"alice", 3, 7, []uint64{3, 5, 6, 7}},
		{"carol", 1, 1, []uint64{1}},
	} {
		first, last, err := s.Bounds(ctx, c.uid)
		if err != nil || first != c.first || last != c.last {
			t.Errorf("Bounds(%s) = %d, %d, %v; want %d, %d", c.uid, first, last, err, c.first, c.last)
		}
		var seqs []uint64
		for _, m := range mustReadAll(t, s, c.uid) {
			seqs = append(seqs, m.Seq)
		}
		if !slices.Equal(seqs, c.seqs) {
			t.Errorf("%s holds Seqs %v, want %v", c.uid, seqs, c.seqs)
		}
	}
	if seq, ok, err := s.Cursor(ctx, "bob", "bob"); err != nil || !ok || seq != 4 {
		t.Errorf("Cursor(bob, bob) = %d, %v, %v; want 4", seq, ok, err)
	}
	bob := mustReadAll(t, s, "bob")
	lastID := mustParse(t, bob[len(bob)-1].ID)
	// The fixture's clock, a minute on: its records are within the window.
	s.now = func() time.Time { return time.UnixMilli(bob[len(bob)-1].Time).Add(time.Minute) }

	// A resend of c-7, stored by the old build, is found; c-8 is new.
	again := submit(t, s, dm("alice", "bob", "m7", "c-7"))
	if !again.Duplicate || again.Msgs[0].Seq != 7 || again.Msgs[0].ID != bob[len(bob)-1].ID {
		t.Errorf("resend of c-7: duplicate %v, seq %d, id %s; want true, 7, %s",
			again.Duplicate, again.Msgs[0].Seq, again.Msgs[0].ID, bob[len(bob)-1].ID)
	}
	next := submit(t, s, dm("alice", "bob", "m8", "c-8"))
	if next.Duplicate || next.Msgs[0].Seq != 8 || next.Msgs[1].Seq != 8 {
		t.Errorf("c-8: duplicate %v, Seqs %d/%d; want false, 8/8", next.Duplicate, next.Msgs[0].Seq, next.Msgs[1].Seq)
	}
	if id := mustParse(t, next.Msgs[0].ID); id <= lastID {
		t.Errorf("new id %d not above the old build's %d", id, lastID)
	}
	if first, last, err := s.Bounds(ctx, "bob"); err != nil || first != 4 || last != 8 {
		t.Errorf("Bounds(bob) after an append = %d, %d, %v; want 4, 8 (MaxPerInbox 5)", first, last, err)
	}
	checkConsistent(t, s)
}

// TestHeadsFromAppends: heads that lag behind the appends (layout 3) load
// right after a restart, across a multiple of headEvery, and with a
// Delete of the newest message in between.
func TestHeadsFromAppends(t *testing.T) {
	ctx := context.Background()
	for _, n := range []int{1, headEvery - 1, headEvery, headEvery + 5, 3*headEvery + 1} {
		for _, del := range []bool{false, true} {
			dir := t.TempDir()
			s := openStore(t, dir, inbox.Options{})
			for range n {
				if _, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindNotice}}); err != nil {
					t.Fatalf("Append: %v", err)
				}
			}
			wantFirst, wantLast, wantHeld := uint64(1), uint64(n), n
			if del {
				if ok, err := s.Delete(ctx, "bob", uint64(n)); err != nil || !ok {
					t.Fatalf("Delete(bob, %d) = %v, %v", n, ok, err)
				}
				wantHeld--
				if wantHeld == 0 {
					wantFirst = 0
				}
			}
			if err := s.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			s = openStore(t, dir, inbox.Options{})
			first, last, err := s.Bounds(ctx, "bob")
			if err != nil || first != wantFirst || last != wantLast {
				t.Errorf("%d appends, delete %v: Bounds after reopen = %d, %d, %v; want %d, %d", n, del, first, last, err, wantFirst, wantLast)
			}
			got, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindNotice}})
			if err != nil || got[0].Seq != uint64(n)+1 {
				t.Errorf("%d appends, delete %v: next Seq = %d, %v; want %d", n, del, got[0].Seq, err, n+1)
			}
			if held := len(mustReadAll(t, s, "bob")); held != wantHeld+1 {
				t.Errorf("%d appends, delete %v: %d held, want %d", n, del, held, wantHeld+1)
			}
			checkConsistent(t, s)
		}
	}
}
