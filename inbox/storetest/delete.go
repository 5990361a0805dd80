package storetest

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// The Delete part of the history suite: deleted messages leave every view,
// also under concurrent deletes and appends, and overflow counts them out.

func testDelete(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	b1, b1Sent := dm(t, s, "bob", "alice", "b1") // alice 1, bob 1
	b2, b2Sent := dm(t, s, "bob", "alice", "b2") // alice 2, bob 2
	c1, _ := dm(t, s, "carol", "alice", "c1")    // alice 3
	b3, b3Sent := dm(t, s, "bob", "alice", "b3") // alice 4, bob 3
	n1 := notice(t, s, "alice", 2, "n1")         // alice 5

	if !mustDelete(t, s, "alice", b2.Seq) {
		t.Fatalf("Delete(alice, %d) = false, want true", b2.Seq)
	}
	checkReadSeqs(t, s, "alice", b1.Seq, c1.Seq, b3.Seq, n1.Seq)
	checkThread(t, s, "alice", "bob", b3, b1)
	checkUnread(t, s, "alice", map[string]int{"bob": 2, "carol": 1, inbox.NoticeThread: 1}, map[int]int{2: 1})
	if mustDelete(t, s, "alice", b2.Seq) {
		t.Errorf("second Delete(alice, %d) = true, want false", b2.Seq)
	}

	// Deleting a thread's newest message makes the one before it Last.
	mustDelete(t, s, "alice", b3.Seq)
	checkThreads(t, s, "alice",
		threadWant{inbox.NoticeThread, n1, 1, 0},
		threadWant{"carol", c1, 1, 0},
		threadWant{"bob", b1, 1, 0},
	)
	// Deleting a thread's only message removes the thread.
	mustDelete(t, s, "alice", c1.Seq)
	checkThreads(t, s, "alice",
		threadWant{inbox.NoticeThread, n1, 1, 0},
		threadWant{"bob", b1, 1, 0},
	)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, inbox.NoticeThread: 1}, map[int]int{2: 1})

	// Deleting the oldest moves Bounds' first; last never goes back.
	checkBounds(t, s, "alice", b1.Seq, n1.Seq)
	mustDelete(t, s, "alice", b1.Seq)
	checkBounds(t, s, "alice", n1.Seq, n1.Seq)
	mustDelete(t, s, "alice", n1.Seq)
	checkBounds(t, s, "alice", 0, n1.Seq)
	checkReadSeqs(t, s, "alice")
	checkThreads(t, s, "alice")
	checkUnread(t, s, "alice", nil, nil)

	for _, c := range []struct {
		uid string
		seq uint64
	}{{"alice", 0}, {"alice", n1.Seq}, {"alice", n1.Seq + 1}, {"alice", 1 << 40}, {"nobody", 1}, {"bob", 0}, {"bob", 4}} {
		if mustDelete(t, s, c.uid, c.seq) {
			t.Errorf("Delete(%q, %d) = true, want false", c.uid, c.seq)
		}
	}

	// Bob's copies are his own messages.
	checkReadSeqs(t, s, "bob", b1Sent.Seq, b2Sent.Seq, b3Sent.Seq)
	checkThread(t, s, "bob", "alice", b3Sent, b2Sent, b1Sent)
	checkBounds(t, s, "bob", 1, 3)

	// Seqs are not reused.
	if m := notice(t, s, "alice", 2, "n2"); m.Seq != n1.Seq+1 {
		t.Errorf("Seq after deleting everything = %d, want %d", m.Seq, n1.Seq+1)
	}
}

func testDeleteConcurrent(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	const n = 60
	for i := range n {
		dm(t, s, "bob", "alice", strconv.Itoa(i))
	}
	// Several deleters race for every Seq while new messages arrive: each
	// message is deleted exactly once.
	const deleters = 4
	var deleted atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, deleters+1)
	for w := range deleters {
		wg.Go(func() {
			for i := range n {
				seq := uint64((i+w*n/deleters)%n + 1)
				ok, err := s.Delete(ctx, "alice", seq)
				if err != nil {
					errs <- fmt.Errorf("Delete(alice, %d): %w", seq, err)
					return
				}
				if ok {
					deleted.Add(1)
				}
			}
		})
	}
	var fresh []inbox.Message
	wg.Go(func() {
		for i := range 10 {
			got, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: "new" + strconv.Itoa(i)}})
			if err != nil {
				errs <- fmt.Errorf("Append: %w", err)
				return
			}
			fresh = append(fresh, got[0])
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if deleted.Load() != n {
		t.Errorf("%d Deletes succeeded, want %d", deleted.Load(), n)
	}
	checkReadSeqs(t, s, "alice", seqsOf(fresh)...)
	slices.Reverse(fresh)
	checkThread(t, s, "alice", "bob", fresh...)
	checkThreads(t, s, "alice", threadWant{"bob", fresh[0], len(fresh), 0})
	checkUnread(t, s, "alice", map[string]int{"bob": len(fresh)}, nil)
	checkBounds(t, s, "alice", n+1, n+uint64(len(fresh)))
}

func testDeleteThenOverflow(t *testing.T, open Opener) {
	drops := &dropLog{}
	s := open(t, inbox.Options{MaxPerInbox: 3, OnDrop: drops.record})
	for range 3 {
		notice(t, s, "u", 1, "")
	}
	mustDelete(t, s, "u", 2)
	// MaxPerInbox counts the messages held, not the Seqs spanned.
	notice(t, s, "u", 1, "")
	checkReadSeqs(t, s, "u", 1, 3, 4)
	if n := drops.count("u", "overflow"); n != 0 {
		t.Errorf("after filling a hole OnDrop(u, overflow) total = %d, want 0", n)
	}
	notice(t, s, "u", 1, "")
	checkReadSeqs(t, s, "u", 3, 4, 5)
	checkBounds(t, s, "u", 3, 5)
	if n := drops.count("u", "overflow"); n != 1 {
		t.Errorf("OnDrop(u, overflow) total = %d, want 1", n)
	}
	// The oldest held is the one dropped, across a hole.
	mustDelete(t, s, "u", 4)
	notice(t, s, "u", 1, "")
	notice(t, s, "u", 1, "")
	checkReadSeqs(t, s, "u", 5, 6, 7)
	checkBounds(t, s, "u", 5, 7)
	if n := drops.count("u", "overflow"); n != 2 {
		t.Errorf("OnDrop(u, overflow) total = %d, want 2", n)
	}
	checkUnread(t, s, "u", map[string]int{inbox.NoticeThread: 3}, map[int]int{1: 3})
}
