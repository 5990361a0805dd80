package pebblestore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// The store answers two questions of every direct message from memory
// when it can: is this request key on disk (requestStats.keys), and does
// the recipient block anybody (blockLists). These tests hold it to what
// the database says, across a restart and against concurrent writers.

func dm(from, to, text, cid string) inbox.Request {
	return inbox.Request{
		Msgs: []inbox.Message{
			{UID: to, Kind: inbox.KindDirect, Peer: from, Content: text},
			{UID: from, Kind: inbox.KindSent, Peer: to, Content: text, CID: cid},
		},
		Key: from + " " + cid,
		Sum: sha256.Sum256([]byte(to + "\x00" + text)),
	}
}

func submit(t *testing.T, s *Store, req inbox.Request) inbox.Receipt {
	t.Helper()
	r, err := s.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("Submit %s: %v", req.Key, err)
	}
	return r
}

// TestResendAfterReopen: the known keys start empty in a new process, so
// they must be read from disk before any lookup is skipped: a resend of a
// request stored before the restart is still a duplicate, and a new key
// is still stored.
func TestResendAfterReopen(t *testing.T) {
	dir := t.TempDir()
	s := openStore(t, dir, inbox.Options{})
	first := make(map[string]inbox.Receipt)
	for i := range 20 {
		req := dm("alice", "bob", fmt.Sprint("hi ", i), fmt.Sprint("c-", i))
		first[req.Key] = submit(t, s, req)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, dir, inbox.Options{})
	for i := range 20 {
		req := dm("alice", "bob", fmt.Sprint("hi ", i), fmt.Sprint("c-", i))
		r := submit(t, s, req)
		if !r.Duplicate || r.Msgs[0].ID != first[req.Key].Msgs[0].ID {
			t.Errorf("resend of %s after reopen: duplicate %v, id %s; want true, %s",
				req.Key, r.Duplicate, r.Msgs[0].ID, first[req.Key].Msgs[0].ID)
		}
	}
	if r := submit(t, s, dm("alice", "bob", "new", "c-new")); r.Duplicate {
		t.Error("a new key after reopen was taken for a duplicate")
	}
	if n := len(mustReadAll(t, s, "bob")); n != 21 {
		t.Errorf("bob holds %d messages, want 21", n)
	}
}

// TestReplacedRecordAfterReopen: a record past the window is still on
// disk until something drops it, and a new request with its key must find
// it to replace it. Were its key missing from the known keys, the new
// record would be written beside the old one's age entry, and the next
// trim, dropping that stale entry, would delete the new record with it:
// a resend of the new request would then be stored twice.
func TestReplacedRecordAfterReopen(t *testing.T) {
	const window = 200 * time.Millisecond
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			dir := t.TempDir()
			opts := inbox.Options{DedupeWindow: window}
			s := openStore(t, dir, opts)
			submit(t, s, dm("alice", "bob", "old", "c-1"))
			time.Sleep(window + 100*time.Millisecond)
			if reopen {
				if err := s.Close(); err != nil {
					t.Fatalf("Close: %v", err)
				}
				s = openStore(t, dir, opts)
			}
			stored := submit(t, s, dm("alice", "bob", "new", "c-1")) // replaces the old record
			if stored.Duplicate {
				t.Fatal("a request with another sum past the window was taken for a duplicate")
			}
			// The replaced record's age is not known, so this append
			// trims bob's records: only those past the window go.
			submit(t, s, dm("carol", "bob", "x", "c-9"))
			if r := submit(t, s, dm("alice", "bob", "new", "c-1")); !r.Duplicate || r.Msgs[0].ID != stored.Msgs[0].ID {
				t.Errorf("resend of the new c-1 after a trim: duplicate %v; want true with id %s", r.Duplicate, stored.Msgs[0].ID)
			}
			checkRequests(t, s, "bob")
		})
	}
}

// TestKnownKeysFollowExpiry: the sweep's deletes leave the known keys
// true, so a resend after the window is stored and counted again.
func TestKnownKeysFollowExpiry(t *testing.T) {
	const window = 200 * time.Millisecond
	s := openStore(t, t.TempDir(), inbox.Options{DedupeWindow: window})
	submit(t, s, dm("alice", "bob", "a", "c-1"))
	submit(t, s, dm("alice", "bob", "b", "c-2"))
	time.Sleep(window + 100*time.Millisecond)
	submit(t, s, dm("alice", "bob", "c", "c-3")) // within the window at the sweep
	if _, err := s.ExpireBefore(context.Background(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("ExpireBefore: %v", err)
	}
	if r := submit(t, s, dm("alice", "bob", "c", "c-3")); !r.Duplicate {
		t.Error("resend of c-3, within the window, was stored again after the sweep")
	}
	if r := submit(t, s, dm("alice", "bob", "a", "c-1")); r.Duplicate {
		t.Error("resend of c-1 after the window and the sweep was taken for a duplicate")
	}
	checkRequests(t, s, "bob")
}

// requestsOf lists uid's request records on disk, in key order (bucket,
// then time), by request key with their times.
func requestsOf(t *testing.T, s *Store, uid string) (keys []string, times []int64) {
	t.Helper()
	scan(t, s, []byte{prefixRequest}, []byte{prefixRequest + 1}, func(k, _ []byte) {
		_, u, ms, key, err := parseRequestKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if u == uid {
			keys, times = append(keys, key), append(times, ms)
		}
	})
	return keys, times
}

// checkRequests checks what the store knows of uid's request records
// against the disk: every record within the window is known by the hash
// of its key with its time, or the hash is shared (two records have it,
// or one whose key was built with another bucket width), and nothing else
// is known within the window.
func checkRequests(t *testing.T, s *Store, uid string) {
	t.Helper()
	window, _ := s.opts.Dedupe()
	cut := s.now().Add(-window).UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	st, known := s.requests[uid]
	if !known {
		return // read from disk at the next request
	}
	live := map[uint32]int{} // records within the window by hash; 2 for one of another width
	scan(t, s, []byte{prefixRequest}, []byte{prefixRequest + 1}, func(k, _ []byte) {
		end, u, ms, key, err := parseRequestKey(k)
		if err != nil {
			t.Fatal(err)
		}
		if u != uid || ms <= cut {
			return
		}
		h := s.keyHash(key)
		live[h]++
		if end != s.bucketEnd(ms) {
			live[h]++
		}
		if got := st.keys[h]; got != ms && got != shared {
			t.Errorf("%s: record %q of %d known as %d", uid, key, ms, got)
		}
	})
	for h, ms := range st.keys {
		if ms > cut && live[h] == 0 {
			t.Errorf("%s: hash %x known at %d has no record on disk", uid, h, ms)
		}
		if ms == shared && live[h] < 2 {
			t.Errorf("%s: hash %x shared by %d records", uid, h, live[h])
		}
	}
}

// TestBlockListCache: an empty list is answered from memory, and every
// change reaches IsBlocked: after a Block, an Unblock, and a restart.
func TestBlockListCache(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, inbox.Options{})
	steps := []struct {
		name string
		do   func() error
		want bool
	}{
		{"empty list", func() error { return nil }, false},
		{"after Block", func() error { _, err := s.Block(ctx, "alice", "bob", 0); return err }, true},
		{"after Unblock of another", func() error { _, err := s.Unblock(ctx, "alice", "carol"); return err }, true},
		{"after Unblock", func() error { _, err := s.Unblock(ctx, "alice", "bob"); return err }, false},
		{"after Block again", func() error { _, err := s.Block(ctx, "alice", "bob", 0); return err }, true},
	}
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		if got, err := s.IsBlocked(ctx, "alice", "bob"); err != nil || got != st.want {
			t.Errorf("%s: IsBlocked(alice, bob) = %v, %v; want %v", st.name, got, err, st.want)
		}
		if got, err := s.IsBlocked(ctx, "alice", "dave"); err != nil || got {
			t.Errorf("%s: IsBlocked(alice, dave) = %v, %v; want false", st.name, got, err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, dir, inbox.Options{})
	if got, err := s.IsBlocked(ctx, "alice", "bob"); err != nil || !got {
		t.Errorf("after reopen: IsBlocked(alice, bob) = %v, %v; want true", got, err)
	}
}

// TestBlockListCacheConcurrent: an IsBlocked that loads a list while a
// Block writes to it never leaves a stale length behind: once Block has
// returned, IsBlocked sees the block.
func TestBlockListCacheConcurrent(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	for i := range 50 {
		uid := fmt.Sprint("u", i)
		var wg sync.WaitGroup
		wg.Go(func() {
			if _, err := s.IsBlocked(ctx, uid, "x"); err != nil {
				t.Errorf("IsBlocked: %v", err)
			}
		})
		wg.Go(func() {
			if _, err := s.Block(ctx, uid, "x", 0); err != nil {
				t.Errorf("Block: %v", err)
			}
		})
		wg.Wait()
		if got, err := s.IsBlocked(ctx, uid, "x"); err != nil || !got {
			t.Fatalf("IsBlocked(%s, x) after Block = %v, %v; want true", uid, got, err)
		}
	}
}

// countPrefix counts the keys that start with prefix.
func countPrefix(s *Store, prefix []byte) (int, error) {
	n := 0
	err := s.scanRange(prefix, prefixEnd(prefix), func([]byte) bool { n++; return true })
	return n, err
}

// TestWriteAcks: cursors move forward only, the same device twice in one
// call keeps the higher, and what was written is there after a restart.
func TestWriteAcks(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openStore(t, dir, inbox.Options{})
	if err := s.SetCursor(ctx, "bob", "phone", 5); err != nil {
		t.Fatal(err)
	}
	err := s.WriteAcks(ctx, []inbox.CursorPos{
		{UID: "bob", Device: "phone", Seq: 3},  // behind: no change
		{UID: "bob", Device: "laptop", Seq: 7}, // new device
		{UID: "alice", Device: "alice", Seq: 9},
		{UID: "alice", Device: "alice", Seq: 4}, // behind the entry above
	}, []inbox.PushRange{{UID: "bob", From: 1, To: 7}})
	if err != nil {
		t.Fatalf("WriteAcks: %v", err)
	}
	if err := s.WriteAcks(ctx, []inbox.CursorPos{{UID: "", Device: "x", Seq: 1}}, nil); err == nil {
		t.Error("WriteAcks with an empty uid succeeded")
	}
	want := []struct {
		uid, device string
		seq         uint64
	}{{"bob", "phone", 5}, {"bob", "laptop", 7}, {"alice", "alice", 9}}
	check := func(when string) {
		t.Helper()
		for _, w := range want {
			seq, ok, err := s.Cursor(ctx, w.uid, w.device)
			if err != nil || !ok || seq != w.seq {
				t.Errorf("%s: Cursor(%s, %s) = %d, %v, %v; want %d", when, w.uid, w.device, seq, ok, err, w.seq)
			}
		}
	}
	check("after WriteAcks")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	s = openStore(t, dir, inbox.Options{})
	check("after reopen")
}

// TestRequestTrimBusyInbox: an inbox over its cap drops its oldest record
// with every request; the walk that finds it starts where the last one
// stopped (requestStats.from), and still finds every record, also those
// written with a clock that went back (which sort first, so they are the
// oldest and go first).
func TestRequestTrimBusyInbox(t *testing.T) {
	const perInbox = 10
	s := openStore(t, t.TempDir(), inbox.Options{DedupePerInbox: perInbox})
	clock := time.Date(2026, 12, 5, 23, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	cid := func(i int) string { return fmt.Sprint("c-", i) }
	for i := range 100 {
		if i == 60 {
			clock = clock.Add(-time.Minute)
		}
		clock = clock.Add(time.Millisecond)
		submit(t, s, dm("alice", "bob", "x", cid(i)))
		keys, _ := requestsOf(t, s, "bob")
		if want := min(i+1, perInbox); len(keys) != want || len(s.requests["bob"].keys) != want {
			t.Fatalf("after %d requests: %d records on disk, %d known; want %d", i+1, len(keys), len(s.requests["bob"].keys), want)
		}
		checkRequests(t, s, "bob")
		if i == 59 {
			for j := 50; j < 60; j++ { // the newest ten
				if r := submit(t, s, dm("alice", "bob", "x", cid(j))); !r.Duplicate {
					t.Errorf("resend of %s, among the %d newest, was stored again", cid(j), perInbox)
				}
			}
		}
	}
	// Every record after the clock went back sorts before 50..59: each
	// one is the oldest at the next request and goes then (a request's own
	// record is never dropped by its own walk), so c-99 and 51..59 stay.
	kept, _ := requestsOf(t, s, "bob")
	want := []string{"alice " + cid(99)}
	for j := 51; j < 60; j++ {
		want = append(want, "alice "+cid(j))
	}
	if !slices.Equal(kept, want) {
		t.Errorf("records kept, oldest first: %q, want %q", kept, want)
	}
}
