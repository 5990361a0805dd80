package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// blockTests cover Blocks: each user's block list.
var blockTests = []subtest{
	{"BlockListRoundTrip", testBlockRoundTrip},
	{"BlockCap", testBlockCap},
	{"BlockCapConcurrent", testBlockCapConcurrent},
	{"BlockListsIsolated", testBlocksIsolated},
	{"SubmitRefusesBlocked", testSubmitRefusesBlocked},
}

func testBlockRoundTrip(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	checkBlockList(t, s, "alice", []string{})
	checkBlocked(t, s, "alice", "bob", false)

	for _, c := range []struct {
		blocked string
		added   bool
	}{{"bob", true}, {"carol", true}, {"bob", false}} {
		added, err := s.Block(ctx, "alice", c.blocked, 0)
		if err != nil || added != c.added {
			t.Fatalf("Block(alice, %s) = %v, %v; want %v, nil", c.blocked, added, err, c.added)
		}
	}
	checkBlockList(t, s, "alice", []string{"bob", "carol"})
	checkBlocked(t, s, "alice", "bob", true)
	checkBlocked(t, s, "alice", "bo", false)    // no prefix match
	checkBlocked(t, s, "alice", "bobby", false) // nor the other way
	checkBlocked(t, s, "bob", "alice", false)   // a block is one-way

	for _, c := range []struct {
		blocked string
		removed bool
	}{{"bob", true}, {"bob", false}, {"dave", false}} {
		removed, err := s.Unblock(ctx, "alice", c.blocked)
		if err != nil || removed != c.removed {
			t.Fatalf("Unblock(alice, %s) = %v, %v; want %v, nil", c.blocked, removed, err, c.removed)
		}
	}
	checkBlockList(t, s, "alice", []string{"carol"})
	checkBlocked(t, s, "alice", "bob", false)

	// Bad uids are refused, not stored.
	for _, c := range []struct{ uid, blocked string }{{"", "bob"}, {"alice", ""}} {
		if _, err := s.Block(ctx, c.uid, c.blocked, 0); err == nil {
			t.Errorf("Block(%q, %q) succeeded, want an error", c.uid, c.blocked)
		}
	}
	checkBlockList(t, s, "alice", []string{"carol"})
}

func testBlockCap(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	for i := range 3 {
		if _, err := s.Block(ctx, "u", fmt.Sprintf("p%d", i), 3); err != nil {
			t.Fatalf("Block %d of 3: %v", i, err)
		}
	}
	if _, err := s.Block(ctx, "u", "p9", 3); !errors.Is(err, inbox.ErrTooManyBlocks) {
		t.Fatalf("4th Block with max 3: %v, want ErrTooManyBlocks", err)
	}
	// Blocking a listed uid at the cap is no change, so it succeeds.
	if added, err := s.Block(ctx, "u", "p1", 3); err != nil || added {
		t.Fatalf("re-Block at the cap = %v, %v; want false, nil", added, err)
	}
	// max 0 is no cap.
	if added, err := s.Block(ctx, "u", "p9", 0); err != nil || !added {
		t.Fatalf("Block with max 0 = %v, %v; want true, nil", added, err)
	}
	checkBlockList(t, s, "u", []string{"p0", "p1", "p2", "p9"})
}

func testBlockCapConcurrent(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	const max, tries = 5, 20
	var wg sync.WaitGroup
	for i := range tries {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Block(ctx, "c", fmt.Sprintf("p%02d", i), max); err != nil && !errors.Is(err, inbox.ErrTooManyBlocks) {
				t.Errorf("Block: %v", err)
			}
		}()
	}
	wg.Wait()
	got, err := s.BlockList(ctx, "c")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != max {
		t.Fatalf("%d concurrent blocks with max %d listed %d uids: %v", tries, max, len(got), got)
	}
}

func testBlocksIsolated(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	// "1" and "10" share a prefix: neither may read the other's list.
	for _, c := range []struct{ uid, blocked string }{{"1", "x"}, {"10", "y"}, {"100", "z"}} {
		if _, err := s.Block(ctx, c.uid, c.blocked, 0); err != nil {
			t.Fatal(err)
		}
	}
	checkBlockList(t, s, "1", []string{"x"})
	checkBlockList(t, s, "10", []string{"y"})
	checkBlocked(t, s, "1", "y", false)
	checkBlocked(t, s, "10", "x", false)
	// A block list is not a message: the inboxes stay empty.
	checkBounds(t, s, "1", 0, 0)
}

// testSubmitRefusesBlocked: a store that checks Request.RefuseIfBlocked
// inside Submit (inbox.BlockingSubmitter) refuses a request whose
// recipient blocked the sender, writing nothing, a resend of a request
// stored before the block included; only the recipient's list counts.
func testSubmitRefusesBlocked(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	bs, ok := s.(inbox.BlockingSubmitter)
	if !ok || !bs.SubmitChecksBlocks() {
		t.Skip("the store does not check blocks in Submit: its callers use IsBlocked")
	}
	ctx := context.Background()
	dm := func(from, to, cid, refuse string) inbox.Request {
		return inbox.Request{
			Msgs: []inbox.Message{
				{UID: to, Kind: inbox.KindDirect, Peer: from, Content: cid},
				{UID: from, Kind: inbox.KindSent, Peer: to, Content: cid, CID: cid},
			},
			Key: from + " " + cid, Sum: sha256.Sum256([]byte(to + "\x00" + cid)), PushAfter: time.Minute,
			RefuseIfBlocked: refuse,
		}
	}
	if _, err := s.Submit(ctx, dm("alice", "bob", "c1", "alice")); err != nil {
		t.Fatalf("Submit before the block: %v", err)
	}
	if _, err := s.Block(ctx, "bob", "alice", 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		req     inbox.Request
		blocked bool
	}{
		{"blocked sender", dm("alice", "bob", "c2", "alice"), true},
		{"blocked sender, resend of a request stored before the block", dm("alice", "bob", "c1", "alice"), true},
		{"sender not blocked", dm("carol", "bob", "c1", "carol"), false},
		{"the recipient's list only (bob blocked alice, not the other way)", dm("bob", "alice", "c1", "bob"), false},
		{"no check asked", dm("alice", "bob", "c3", ""), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before [2]uint64
			for i, m := range tt.req.Msgs {
				_, before[i], _ = s.Bounds(ctx, m.UID)
			}
			r, err := s.Submit(ctx, tt.req)
			if !tt.blocked {
				if err != nil || len(r.Msgs) != 2 || r.Msgs[0].Seq == 0 {
					t.Fatalf("Submit = %+v, %v; want it stored", r, err)
				}
				return
			}
			if !errors.Is(err, inbox.ErrBlocked) || !errors.Is(err, inbox.ErrNotStored) {
				t.Fatalf("Submit = %+v, %v; want ErrBlocked and ErrNotStored", r, err)
			}
			for i, m := range tt.req.Msgs {
				checkBounds(t, s, m.UID, 1, before[i])
			}
		})
	}
	// A refused request takes nothing with it (no lock, no record): once
	// unblocked, the same request is stored.
	if _, err := s.Unblock(ctx, "bob", "alice"); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Submit(ctx, dm("alice", "bob", "c2", "alice")); err != nil || r.Duplicate {
		t.Fatalf("Submit after the unblock = duplicate %v, %v; want stored", r.Duplicate, err)
	}
}

func checkBlockList(t *testing.T, s inbox.Store, uid string, want []string) {
	t.Helper()
	got, err := s.BlockList(context.Background(), uid)
	if err != nil {
		t.Fatalf("BlockList(%q): %v", uid, err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("BlockList(%q) = %#v, want %#v", uid, got, want)
	}
}

func checkBlocked(t *testing.T, s inbox.Store, uid, peer string, want bool) {
	t.Helper()
	got, err := s.IsBlocked(context.Background(), uid, peer)
	if err != nil {
		t.Fatalf("IsBlocked(%q, %q): %v", uid, peer, err)
	}
	if got != want {
		t.Errorf("IsBlocked(%q, %q) = %v, want %v", uid, peer, got, want)
	}
}
