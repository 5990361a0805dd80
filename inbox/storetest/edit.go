package storetest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// editTests check the inbox.Editor part of a Store.
var editTests = []subtest{
	{"EditReplacesContent", testEditReplacesContent},
	{"EditNothingHeld", testEditNothingHeld},
	{"EditConcurrent", testEditConcurrent},
	{"EditThenDeleteAndExpire", testEditThenDelete},
	{"EditClosed", testEditClosed},
}

func mustEdit(t *testing.T, s inbox.Store, uid string, seq uint64, content string, at int64) bool {
	t.Helper()
	ok, err := s.Edit(context.Background(), uid, seq, content, at)
	if err != nil {
		t.Fatalf("Edit(%q, %d): %v", uid, seq, err)
	}
	return ok
}

// An edit changes Content and Edited and nothing else: the message keeps
// its id, time, place and thread, every reader sees the new text, and the
// unread counts do not move.
func testEditReplacesContent(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	in, sent := dm(t, s, "bob", "alice", "helo")
	other, _ := dm(t, s, "carol", "alice", "hi")
	unreadBefore, err := s.Unread(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}

	const at = 1764950400123
	for _, c := range []inbox.Message{in, sent} {
		if !mustEdit(t, s, c.UID, c.Seq, "hello", at) {
			t.Fatalf("Edit(%s, %d) found nothing", c.UID, c.Seq)
		}
	}
	for _, c := range []inbox.Message{in, sent} {
		want := c
		want.Content, want.Edited = "hello", at
		var got inbox.Message
		for _, m := range mustRead(t, s, c.UID) {
			if m.Seq == c.Seq {
				got = m
			}
		}
		got.UID = c.UID
		if got != want {
			t.Errorf("Read after edit:\n got %s\nwant %s", show(got), show(want))
		}
		th := mustThread(t, s, c.UID, c.Peer, 0, 10)
		if len(th) == 0 || th[len(th)-1].Content != "hello" || th[len(th)-1].Edited != at {
			t.Errorf("Thread(%s, %s) after edit = %v", c.UID, c.Peer, th)
		}
	}
	for _, sum := range mustThreads(t, s, "bob") {
		if sum.Thread == "alice" && (sum.Last.Content != "hello" || sum.Last.Edited != at) {
			t.Errorf("Threads(bob): newest of alice = %s, want the edited text", show(sum.Last))
		}
	}
	if got := mustRead(t, s, "alice"); got[len(got)-1].Seq != other.Seq || got[len(got)-1].Edited != 0 || got[len(got)-1].Content != "hi" {
		t.Errorf("another message changed: %s", show(got[len(got)-1]))
	}
	unreadAfter, err := s.Unread(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	if unreadAfter.Total != unreadBefore.Total || unreadAfter.Threads["bob"] != unreadBefore.Threads["bob"] {
		t.Errorf("unread %+v after edit, was %+v", unreadAfter, unreadBefore)
	}

	// A second edit wins over the first.
	if !mustEdit(t, s, in.UID, in.Seq, "hello!", at+5) {
		t.Fatal("second edit found nothing")
	}
	if got := mustRead(t, s, "alice")[0]; got.Content != "hello!" || got.Edited != at+5 {
		t.Errorf("after a second edit: %s", show(got))
	}
}

// Nothing held under the uid and seq: ok false, and no inbox changes.
func testEditNothingHeld(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	in, _ := dm(t, s, "bob", "alice", "a")
	gone, _ := dm(t, s, "bob", "alice", "b")
	mustDelete(t, s, "alice", gone.Seq)
	before := mustRead(t, s, "alice")

	for _, tt := range []struct {
		name string
		uid  string
		seq  uint64
	}{
		{"deny: seq 0", "alice", 0},
		{"deny: seq never assigned", "alice", in.Seq + 100},
		{"deny: a deleted message", "alice", gone.Seq},
		{"deny: another inbox's seq", "dave", in.Seq},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if mustEdit(t, s, tt.uid, tt.seq, "x", 1) {
				t.Fatalf("Edit(%s, %d) reported an edit", tt.uid, tt.seq)
			}
		})
	}
	after := mustRead(t, s, "alice")
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Fatalf("inbox changed:\n%v\n%v", before, after)
	}
	if got := mustRead(t, s, "dave"); len(got) != 0 {
		t.Fatalf("an edit created a message: %v", got)
	}
}

// Concurrent edits of one message all succeed and one of them is what is
// left: none is half applied and the message is never lost or doubled.
func testEditConcurrent(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	in, _ := dm(t, s, "bob", "alice", "start")
	const n = 8
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok, err := s.Edit(context.Background(), "alice", in.Seq, fmt.Sprintf("v%d", i), int64(1000+i))
			if err == nil && !ok {
				err = errors.New("edit found nothing")
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got := mustRead(t, s, "alice")
	if len(got) != 1 {
		t.Fatalf("inbox holds %d messages after concurrent edits", len(got))
	}
	if want := fmt.Sprintf("v%d", got[0].Edited-1000); got[0].Content != want {
		t.Fatalf("content %q with edited %d: parts of two edits", got[0].Content, got[0].Edited)
	}
	if th := mustThread(t, s, "alice", "bob", 0, 10); len(th) != 1 || th[0].Content != got[0].Content {
		t.Fatalf("thread = %v, want the one edited message", th)
	}
}

// An edited message is deleted and expired like any other.
func testEditThenDelete(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	in, sent := dm(t, s, "bob", "alice", "a")
	mustEdit(t, s, "alice", in.Seq, "b", 7)
	mustEdit(t, s, "bob", sent.Seq, "b", 7)
	if !mustDelete(t, s, "alice", in.Seq) {
		t.Fatal("edited message not found by Delete")
	}
	if got := mustThread(t, s, "alice", "bob", 0, 10); len(got) != 0 {
		t.Fatalf("thread after deleting the edited message = %v", got)
	}
	if _, err := s.ExpireBefore(context.Background(), time.UnixMilli(sent.Time+1)); err != nil {
		t.Fatal(err)
	}
	if got := mustRead(t, s, "bob"); len(got) != 0 {
		t.Fatalf("edited message survived expiry: %v", got)
	}
	if got := mustThreads(t, s, "bob"); len(got) != 0 {
		t.Fatalf("threads after expiry: %v", got)
	}
}

func testEditClosed(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	in, _ := dm(t, s, "bob", "alice", "a")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Edit(context.Background(), "alice", in.Seq, "b", 1); !errors.Is(err, inbox.ErrClosed) {
		t.Fatalf("Edit after Close: %v, want ErrClosed", err)
	}
}
