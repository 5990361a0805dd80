package storetest

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// The retention part of the history suite: overflow and expiry keep
// threads, unread counts and read marks consistent.

func testHistoryOverflow(t *testing.T, open Opener) {
	drops := &dropLog{}
	s := open(t, inbox.Options{MaxPerInbox: 3, OnDrop: drops.record})
	c1, _ := dm(t, s, "carol", "alice", "c1") // alice 1
	var fromBob []inbox.Message
	for i := range 3 {
		m, _ := dm(t, s, "bob", "alice", "b"+strconv.Itoa(i)) // alice 2..4
		fromBob = append(fromBob, m)
	}
	// Carol's only message was dropped, and her thread with it.
	checkThread(t, s, "alice", "carol")
	checkThreads(t, s, "alice", threadWant{"bob", fromBob[2], 3, 0})
	checkUnread(t, s, "alice", map[string]int{"bob": 3}, nil)
	if n := drops.count("alice", "overflow"); n != 1 {
		t.Errorf("OnDrop(alice, overflow) total = %d, want 1", n)
	}

	mustMarkRead(t, s, "alice", "carol", c1.Seq)
	mustMarkRead(t, s, "alice", "bob", fromBob[1].Seq)
	b3, _ := dm(t, s, "bob", "alice", "b3") // drops alice 2
	checkThread(t, s, "alice", "bob", b3, fromBob[2], fromBob[1])
	checkThreads(t, s, "alice", threadWant{"bob", b3, 2, fromBob[1].Seq})
	checkUnread(t, s, "alice", map[string]int{"bob": 2}, nil)

	// An Append holding more entries for one inbox than it keeps drops
	// some of its own.
	got := mustAppend(t, s,
		inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: 1},
		inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: 2},
		inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: 3},
		inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: 4},
	)
	checkReadSeqs(t, s, "alice", got[1].Seq, got[2].Seq, got[3].Seq)
	checkThread(t, s, "alice", "bob")
	checkThread(t, s, "alice", inbox.NoticeThread, got[3], got[2], got[1])
	checkThreads(t, s, "alice", threadWant{inbox.NoticeThread, got[3], 3, 0})
	checkUnread(t, s, "alice", map[string]int{inbox.NoticeThread: 3}, map[int]int{2: 1, 3: 1, 4: 1})
	// Marks survive their thread.
	checkReadMark(t, s, "alice", "carol", c1.Seq)
}

func testHistoryExpire(t *testing.T, open Opener) {
	s := open(t, inbox.Options{Retention: time.Hour})
	ctx := context.Background()
	b1, _ := dm(t, s, "bob", "alice", "old")
	dm(t, s, "carol", "alice", "old")
	old := notice(t, s, "alice", 1, "old")
	mustMarkRead(t, s, "alice", "bob", b1.Seq)
	waitPastMilli(t, old.Time)
	b2, _ := dm(t, s, "bob", "alice", "new")

	n, err := s.ExpireBefore(ctx, time.UnixMilli(b2.Time))
	if err != nil {
		t.Fatalf("ExpireBefore: %v", err)
	}
	// alice's three old messages, and bob's and carol's sent copies.
	if n != 5 {
		t.Errorf("ExpireBefore dropped %d, want 5", n)
	}
	checkThread(t, s, "alice", "bob", b2)
	checkThread(t, s, "alice", "carol")
	checkThread(t, s, "alice", inbox.NoticeThread)
	checkThreads(t, s, "alice", threadWant{"bob", b2, 1, b1.Seq})
	checkUnread(t, s, "alice", map[string]int{"bob": 1}, nil)
	checkThreads(t, s, "carol")

	if _, err := s.ExpireBefore(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatalf("ExpireBefore: %v", err)
	}
	checkThread(t, s, "alice", "bob")
	checkThreads(t, s, "alice")
	checkUnread(t, s, "alice", nil, nil)
	checkThreads(t, s, "bob")
	// Read marks are not messages: expiry leaves them alone.
	checkReadMark(t, s, "alice", "bob", b1.Seq)

	b3, _ := dm(t, s, "bob", "alice", "newer")
	checkThreads(t, s, "alice", threadWant{"bob", b3, 1, b1.Seq})
}

// waitPastMilli waits until the wall clock is past millisecond ms, so that
// messages appended next have a later Time.
func waitPastMilli(t *testing.T, ms int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().UnixMilli() <= ms+1 {
		if time.Now().After(deadline) {
			t.Fatal("wall clock did not advance")
		}
		time.Sleep(time.Millisecond)
	}
}
