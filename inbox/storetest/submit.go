package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// submitTests cover Submit: the request record that makes a resend
// harmless and the push schedule written with the entries.
var submitTests = []subtest{
	{"SubmitResendIsDuplicate", testSubmitDuplicate},
	{"SubmitKeyNeedsSameSum", testSubmitOtherSum},
	{"SubmitKeyPerFirstInbox", testSubmitOtherRecipient},
	{"SubmitWindow", testSubmitWindow},
	{"SubmitCapPerInbox", testSubmitCap},
	{"SubmitConcurrentResends", testSubmitConcurrent},
	{"SubmitSchedulesPushes", testSubmitPushes},
	{"SubmitRefusesLongKey", testSubmitLongKey},
}

// dmRequest is a direct message request from "from" to "to" as the broker builds
// it: the recipient's entry first.
func dmRequest(from, to, text, cid string) inbox.Request {
	return inbox.Request{
		Msgs: []inbox.Message{
			{UID: to, Kind: inbox.KindDirect, Peer: from, Content: text},
			{UID: from, Kind: inbox.KindSent, Peer: to, Content: text, CID: cid},
		},
		Key: from + " " + cid,
		Sum: sha256.Sum256([]byte(to + "\x00" + text)),
	}
}

func mustSubmit(t *testing.T, s inbox.Store, req inbox.Request) inbox.Receipt {
	t.Helper()
	r, err := s.Submit(context.Background(), req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if len(r.Msgs) != len(req.Msgs) {
		t.Fatalf("Submit of %d entries returned %d", len(req.Msgs), len(r.Msgs))
	}
	return r
}

func testSubmitDuplicate(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	first := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	if first.Duplicate {
		t.Fatal("first Submit reported a duplicate")
	}
	mustSubmit(t, s, dmRequest("alice", "bob", "other", "c-2"))
	again := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	if !again.Duplicate {
		t.Fatal("resend of a stored request was not reported as a duplicate")
	}
	for i := range first.Msgs {
		f, a := first.Msgs[i], again.Msgs[i]
		if a.ID != f.ID || a.Seq != f.Seq || a.Time != f.Time || a.UID != f.UID {
			t.Errorf("entry %d of the duplicate = %s/%d/%d/%s, want the original %s/%d/%d/%s",
				i, a.ID, a.Seq, a.Time, a.UID, f.ID, f.Seq, f.Time, f.UID)
		}
	}
	for _, uid := range []string{"alice", "bob"} {
		if n := len(mustRead(t, s, uid)); n != 2 {
			t.Errorf("%s holds %d messages after a resend, want 2", uid, n)
		}
	}
}

func testSubmitOtherSum(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	first := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	other := mustSubmit(t, s, dmRequest("alice", "bob", "changed", "c-1"))
	if other.Duplicate || other.Msgs[0].ID == first.Msgs[0].ID {
		t.Fatal("a request with a known key but other content was taken for a duplicate")
	}
	// The newer request replaced the record: it is the one found now.
	again := mustSubmit(t, s, dmRequest("alice", "bob", "changed", "c-1"))
	if !again.Duplicate || again.Msgs[0].ID != other.Msgs[0].ID {
		t.Errorf("resend of the newer request: duplicate %v, id %s, want true, %s", again.Duplicate, again.Msgs[0].ID, other.Msgs[0].ID)
	}
}

func testSubmitOtherRecipient(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	req := dmRequest("alice", "carol", "hi", "c-1")
	req.Sum = dmRequest("alice", "bob", "hi", "c-1").Sum // the same sum, another first inbox
	if r := mustSubmit(t, s, req); r.Duplicate {
		t.Error("a request to another recipient was taken for a duplicate")
	}
	if n := len(mustRead(t, s, "carol")); n != 1 {
		t.Errorf("carol holds %d messages, want 1", n)
	}
}

func testSubmitWindow(t *testing.T, open Opener) {
	const window = 300 * time.Millisecond
	s := open(t, inbox.Options{DedupeWindow: window})
	first := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	time.Sleep(window + 100*time.Millisecond)
	// The sweep drops records of quiet inboxes; a resend after the window
	// is a new request with or without it.
	if _, err := s.ExpireBefore(context.Background(), time.Now().Add(-time.Hour)); err != nil {
		t.Fatalf("ExpireBefore: %v", err)
	}
	late := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1"))
	if late.Duplicate || late.Msgs[0].ID == first.Msgs[0].ID {
		t.Error("a resend after the dedupe window was taken for a duplicate")
	}
	if n := len(mustRead(t, s, "bob")); n != 2 {
		t.Errorf("bob holds %d messages, want 2", n)
	}
}

func testSubmitCap(t *testing.T, open Opener) {
	s := open(t, inbox.Options{DedupePerInbox: 3})
	cids := []string{"c-1", "c-2", "c-3", "c-4"}
	for _, cid := range cids {
		mustSubmit(t, s, dmRequest("alice", "bob", "hi", cid))
	}
	// bob's inbox remembers the three newest requests only.
	for i := len(cids) - 1; i >= 1; i-- {
		if r := mustSubmit(t, s, dmRequest("alice", "bob", "hi", cids[i])); !r.Duplicate {
			t.Errorf("resend of %s (among the 3 newest) was stored again", cids[i])
		}
	}
	if r := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-1")); r.Duplicate {
		t.Error("resend of c-1 (past the cap of 3) was found: the cap is not kept")
	}
	// A request to another inbox does not count against bob's.
	mustSubmit(t, s, dmRequest("alice", "carol", "hi", "c-9"))
	if r := mustSubmit(t, s, dmRequest("alice", "bob", "hi", "c-4")); !r.Duplicate {
		t.Error("resend of c-4 was stored again after a request to carol")
	}
}

func testSubmitConcurrent(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	const senders = 8
	var wg sync.WaitGroup
	receipts := make([]inbox.Receipt, senders)
	errs := make([]error, senders)
	for i := range senders {
		wg.Go(func() { receipts[i], errs[i] = s.Submit(context.Background(), dmRequest("alice", "bob", "hi", "c-1")) })
	}
	wg.Wait()
	stored := 0
	for i, r := range receipts {
		if errs[i] != nil {
			t.Fatalf("Submit %d: %v", i, errs[i])
		}
		if !r.Duplicate {
			stored++
		}
		if r.Msgs[0].ID != receipts[0].Msgs[0].ID {
			t.Errorf("Submit %d got id %s, Submit 0 %s", i, r.Msgs[0].ID, receipts[0].Msgs[0].ID)
		}
	}
	if stored != 1 {
		t.Errorf("%d of %d concurrent resends were stored, want 1", stored, senders)
	}
	if n := len(mustRead(t, s, "bob")); n != 1 {
		t.Errorf("bob holds %d messages, want 1", n)
	}
}

func testSubmitPushes(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	const after = time.Minute
	req := dmRequest("alice", "bob", "hi", "c-1")
	req.PushAfter = after
	r := mustSubmit(t, s, req)
	notice := mustSubmit(t, s, inbox.Request{Msgs: []inbox.Message{{UID: "carol", Kind: inbox.KindNotice}}, PushAfter: after})
	mustSubmit(t, s, inbox.Request{Msgs: []inbox.Message{{UID: inbox.BroadcastInbox, Kind: inbox.KindNotice}}, PushAfter: after})
	mustSubmit(t, s, inbox.Request{Msgs: []inbox.Message{{UID: "dave", Kind: inbox.KindNotice}}}) // no PushAfter
	if again := mustSubmit(t, s, req); !again.Duplicate {
		t.Fatal("resend not found")
	}

	dueAt := time.UnixMilli(r.Msgs[0].Time).Add(after)
	if due, err := s.ClaimDuePushes(ctx, dueAt.Add(-time.Millisecond), time.Minute, 100); err != nil || len(due) != 0 {
		t.Fatalf("pushes due before PushAfter = %v, %v, want none", due, err)
	}
	due, err := s.ClaimDuePushes(ctx, time.Now().Add(after+2*time.Second), time.Minute, 100)
	if err != nil {
		t.Fatalf("ClaimDuePushes: %v", err)
	}
	want := map[string]uint64{"bob": r.Msgs[0].Seq, "carol": notice.Msgs[0].Seq}
	if len(due) != len(want) {
		t.Fatalf("due pushes %+v, want one for bob and one for carol (not the sender's copy, the broadcast log, a request without PushAfter, or a resend)", due)
	}
	for _, e := range due {
		if seq, ok := want[e.UID]; !ok || e.Seq != seq {
			t.Errorf("push %+v, want seqs %v", e, want)
		}
	}
}

func testSubmitLongKey(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	req := dmRequest("alice", "bob", "hi", strings.Repeat("c", inbox.MaxRequestKey))
	_, err := s.Submit(context.Background(), req)
	if !errors.Is(err, inbox.ErrBadRequestKey) || !errors.Is(err, inbox.ErrNotStored) {
		t.Errorf("Submit with a %d-byte key = %v, want ErrBadRequestKey and ErrNotStored", len(req.Key), err)
	}
	if n := len(mustRead(t, s, "bob")); n != 0 {
		t.Errorf("bob holds %d messages after a refused Submit, want 0", n)
	}
}
