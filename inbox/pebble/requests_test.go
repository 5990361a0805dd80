package pebblestore

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// FuzzDecodeRequest: a stored request record never panics the decoder,
// and what decodes encodes back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(requestRecord{ms: 1733400000000, id: 42, seqs: []uint64{7, 9}}))
	f.Add(make([]byte, 47))
	f.Add(make([]byte, 49))
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeRequest(v)
		if err != nil {
			return
		}
		if got := encodeRequest(r); !bytes.Equal(got, v) {
			t.Fatalf("decode then encode = %x, want %x", got, v)
		}
	})
}

// FuzzRequestKey: record keys split back into what built them, and any
// bytes either split or give an error.
func FuzzRequestKey(f *testing.F) {
	f.Add(int64(1733400075000), "10021", int64(1733400000000), "10001 c-1")
	f.Add(int64(0), "a", int64(0), "")
	f.Fuzz(func(t *testing.T, end int64, uid string, ms int64, key string) {
		_, _, _, _, _ = parseRequestKey([]byte(key)) // any bytes: no panic
		if checkUID(uid) != nil || ms < 0 || end < 0 {
			return
		}
		e, u, m, k, err := parseRequestKey(requestKey(end, uid, ms, key))
		if err != nil || e != end || u != uid || m != ms || k != key {
			t.Fatalf("parse = %d %q %d %q %v, want %d %q %d %q", e, u, m, k, err, end, uid, ms, key)
		}
	})
}

// TestSweepDropsEndedBuckets: the sweep drops every bucket that ended
// before the window with one range delete, keeps those that did not, and
// forgets the inboxes with nothing left within the window; a resend past
// the window is stored again, one within it is not.
func TestSweepDropsEndedBuckets(t *testing.T) {
	const window = 8 * time.Second // buckets of a second
	s := openStore(t, t.TempDir(), inbox.Options{DedupeWindow: window})
	clock := time.UnixMilli(1_800_000_000_000) // a bucket boundary
	s.now = func() time.Time { return clock }
	submit(t, s, dm("alice", "bob", "a", "c-1"))
	submit(t, s, dm("alice", "carol", "a", "c-1"))
	clock = clock.Add(5 * time.Second)
	submit(t, s, dm("alice", "bob", "b", "c-2"))

	for _, step := range []struct {
		name      string
		after     time.Duration // since the first requests
		bob       []string
		carolLeft bool // what the store knows of carol
	}{
		{"within the window", 7500 * time.Millisecond, []string{"alice c-1", "alice c-2"}, true},
		// c-1 is past the window, but its bucket ends only at 1 s past it.
		{"bucket not ended", 8*time.Second + 500*time.Millisecond, []string{"alice c-1", "alice c-2"}, false},
		{"bucket ended", 9 * time.Second, []string{"alice c-2"}, false},
	} {
		clock = time.UnixMilli(1_800_000_000_000).Add(step.after)
		if _, err := s.ExpireBefore(context.Background(), clock.Add(-time.Hour)); err != nil {
			t.Fatalf("%s: ExpireBefore: %v", step.name, err)
		}
		if keys, _ := requestsOf(t, s, "bob"); !slices.Equal(keys, step.bob) {
			t.Errorf("%s: bob's records %q, want %q", step.name, keys, step.bob)
		}
		if _, known := s.requests["carol"]; known != step.carolLeft {
			t.Errorf("%s: carol's records known %v, want %v", step.name, known, step.carolLeft)
		}
		checkRequests(t, s, "bob")
	}
	if r := submit(t, s, dm("alice", "bob", "a", "c-1")); r.Duplicate {
		t.Error("resend of c-1 past the window and the sweep was taken for a duplicate")
	}
	if r := submit(t, s, dm("alice", "bob", "b", "c-2")); !r.Duplicate {
		t.Error("resend of c-2, within the window, was stored again after the sweep")
	}
	checkRequests(t, s, "bob")
}

// TestRequestsAfterWindowChange: records written with another bucket
// width (a store reopened with another dedupe window) are still found,
// though their keys cannot be built from their times, and the sweep drops
// them once their own buckets have ended.
func TestRequestsAfterWindowChange(t *testing.T) {
	dir := t.TempDir()
	clock := time.UnixMilli(1_800_000_000_300)
	s := openStore(t, dir, inbox.Options{DedupeWindow: 8 * time.Second}) // buckets of 1 s
	s.now = func() time.Time { return clock }
	first := submit(t, s, dm("alice", "bob", "a", "c-1"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, inbox.Options{DedupeWindow: 80 * time.Second}) // buckets of 10 s
	s.now = func() time.Time { return clock }
	r := submit(t, s, dm("alice", "bob", "a", "c-1"))
	if !r.Duplicate || r.Msgs[0].ID != first.Msgs[0].ID {
		t.Errorf("resend after the window changed: duplicate %v, id %s; want true, %s", r.Duplicate, r.Msgs[0].ID, first.Msgs[0].ID)
	}
	if got := s.requests["bob"].keys[s.keyHash("alice c-1")]; got != shared {
		t.Errorf("a record of the old width is known at %d, want shared (found by reading)", got)
	}
	submit(t, s, dm("alice", "bob", "b", "c-2"))
	checkRequests(t, s, "bob")

	// The old record's bucket ended at 1_800_000_001_000; the new ones'
	// at 1_800_000_010_000.
	clock = time.UnixMilli(1_800_000_010_000).Add(80 * time.Second)
	if _, err := s.ExpireBefore(context.Background(), clock.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	if keys, _ := requestsOf(t, s, "bob"); len(keys) != 0 {
		t.Errorf("records left after every bucket ended: %q", keys)
	}
}

// TestSharedHash: two request keys whose hashes collide in one inbox are
// both remembered, a resend of either is found, and a trim or a restart
// keeps them apart.
func TestSharedHash(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, inbox.Options{})
	a, b := collidingCIDs(t, s, "alice")
	ra := submit(t, s, dm("alice", "bob", "a", a))
	rb := submit(t, s, dm("alice", "bob", "b", b))
	if rb.Duplicate {
		t.Fatal("a request whose key's hash collides with another's was taken for a duplicate")
	}
	check := func(when string) {
		t.Helper()
		for _, c := range []struct {
			cid, text string
			want      inbox.Receipt
		}{{a, "a", ra}, {b, "b", rb}} {
			r := submit(t, s, dm("alice", "bob", c.text, c.cid))
			if !r.Duplicate || r.Msgs[0].ID != c.want.Msgs[0].ID {
				t.Errorf("%s: resend of %s: duplicate %v, id %s; want true, %s", when, c.cid, r.Duplicate, r.Msgs[0].ID, c.want.Msgs[0].ID)
			}
		}
		if keys, _ := requestsOf(t, s, "bob"); len(keys) != 2 {
			t.Errorf("%s: bob has %d records, want 2", when, len(keys))
		}
		checkRequests(t, s, "bob")
	}
	check("after both")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, inbox.Options{})
	// The seed is the new store's: collide again under it.
	a, b = collidingCIDs(t, s, "alice")
	ra = submit(t, s, dm("alice", "bob", "a", a))
	rb = submit(t, s, dm("alice", "bob", "b", b))
	if keys, _ := requestsOf(t, s, "bob"); len(keys) != 4 {
		t.Fatalf("bob has %d records after reopen, want 4", len(keys))
	}
	for _, c := range []struct {
		cid, text string
		want      inbox.Receipt
	}{{a, "a", ra}, {b, "b", rb}} {
		if r := submit(t, s, dm("alice", "bob", c.text, c.cid)); !r.Duplicate || r.Msgs[0].ID != c.want.Msgs[0].ID {
			t.Errorf("after reopen: resend of %s: duplicate %v; want true", c.cid, r.Duplicate)
		}
	}
	checkRequests(t, s, "bob")
}

// collidingCIDs finds two cids whose request keys (from + " " + cid, as
// dm builds them) have the same hash in s: a birthday search, about
// 80,000 keys for one pair.
func collidingCIDs(t *testing.T, s *Store, from string) (string, string) {
	t.Helper()
	seen := make(map[uint32]string)
	for i := range 2_000_000 {
		cid := "x-" + strconv.Itoa(i)
		h := s.keyHash(from + " " + cid)
		if other, ok := seen[h]; ok {
			return other, cid
		}
		seen[h] = cid
	}
	t.Fatal("no colliding pair in 2,000,000 keys")
	return "", ""
}

// TestCapCountsRecordsWithinWindow: records past the window, whose disk
// keys the sweep already dropped, do not count against DedupePerInbox,
// so they never push out a record within the window.
func TestCapCountsRecordsWithinWindow(t *testing.T) {
	const window = 8 * time.Second // buckets of a second
	s := openStore(t, t.TempDir(), inbox.Options{DedupeWindow: window, DedupePerInbox: 5})
	t0 := time.UnixMilli(1_800_000_000_000)
	clock := t0
	s.now = func() time.Time { return clock }
	for i := range 4 {
		submit(t, s, dm("alice", "bob", "old", fmt.Sprint("old-", i)))
	}
	clock = t0.Add(8500 * time.Millisecond)
	live := submit(t, s, dm("alice", "bob", "live", "live"))
	clock = t0.Add(9500 * time.Millisecond) // the old four are past the window, their bucket ended
	if _, err := s.ExpireBefore(context.Background(), clock.Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	submit(t, s, dm("alice", "bob", "new", "new-1"))
	submit(t, s, dm("alice", "bob", "new", "new-2"))
	if r := submit(t, s, dm("alice", "bob", "live", "live")); !r.Duplicate || r.Msgs[0].ID != live.Msgs[0].ID {
		t.Errorf("resend of a request within the window, with the inbox under its cap: duplicate %v; want true", r.Duplicate)
	}
	if keys, _ := requestsOf(t, s, "bob"); len(keys) != 3 {
		t.Errorf("bob's records %q, want the three within the window", keys)
	}
	checkRequests(t, s, "bob")
}
