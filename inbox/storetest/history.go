package storetest

import (
	"context"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// historyTests check the inbox.History part of a Store.
var historyTests = []subtest{
	{"ThreadPaging", testThreadPaging},
	{"ThreadPagingEdges", testThreadPagingEdges},
	{"ThreadsPerPeerAndInbox", testThreadsPerPeer},
	{"NoThreadKinds", testNoThreadKinds},
	{"NoticeThread", testNoticeThread},
	{"Threads", testThreads},
	{"ThreadsPaging", testThreadsPaging},
	{"Unread", testUnread},
	{"MarkReadForwardOnly", testMarkRead},
	{"ReadMarkAnyThread", testReadMarkAnyThread},
	{"Delete", testDelete},
	{"DeleteConcurrent", testDeleteConcurrent},
	{"DeleteThenOverflow", testDeleteThenOverflow},
	{"HistoryOverflow", testHistoryOverflow},
	{"HistoryExpire", testHistoryExpire},
	{"BroadcastInbox", testBroadcastInbox},
	{"HistoryClosed", testHistoryClosed},
}

// dm appends a direct message as the broker does: the recipient's copy and
// the sender's in one Append. It returns both.
func dm(t *testing.T, s inbox.Store, from, to, content string) (in, sent inbox.Message) {
	t.Helper()
	got := mustAppend(t, s,
		inbox.Message{UID: to, Kind: inbox.KindDirect, Peer: from, Nickname: "nick-" + from, Content: content},
		inbox.Message{UID: from, Kind: inbox.KindSent, Peer: to, Content: content, CID: "cid-" + content},
	)
	return got[0], got[1]
}

// notice appends a targeted notice to uid's inbox.
func notice(t *testing.T, s inbox.Store, uid string, msgType int, content string) inbox.Message {
	t.Helper()
	return mustAppend(t, s, inbox.Message{UID: uid, Kind: inbox.KindNotice, MsgType: msgType, Event: "ev", Content: content})[0]
}

func mustThread(t *testing.T, s inbox.Store, uid, thread string, before uint64, limit int) []inbox.Message {
	t.Helper()
	got, err := s.Thread(context.Background(), uid, thread, before, limit)
	if err != nil {
		t.Fatalf("Thread(%q, %q, %d, %d): %v", uid, thread, before, limit, err)
	}
	return got
}

func mustThreads(t *testing.T, s inbox.Store, uid string) []inbox.ThreadSummary {
	t.Helper()
	got, err := s.Threads(context.Background(), uid, 0, 0)
	if err != nil {
		t.Fatalf("Threads(%q): %v", uid, err)
	}
	return got
}

func mustMarkRead(t *testing.T, s inbox.Store, uid, thread string, seq uint64) {
	t.Helper()
	if err := s.MarkRead(context.Background(), uid, thread, seq); err != nil {
		t.Fatalf("MarkRead(%q, %q, %d): %v", uid, thread, seq, err)
	}
}

func checkReadMark(t *testing.T, s inbox.Store, uid, thread string, want uint64) {
	t.Helper()
	got, err := s.ReadMark(context.Background(), uid, thread)
	if err != nil {
		t.Fatalf("ReadMark(%q, %q): %v", uid, thread, err)
	}
	if got != want {
		t.Errorf("ReadMark(%q, %q) = %d, want %d", uid, thread, got, want)
	}
}

func mustDelete(t *testing.T, s inbox.Store, uid string, seq uint64) bool {
	t.Helper()
	ok, err := s.Delete(context.Background(), uid, seq)
	if err != nil {
		t.Fatalf("Delete(%q, %d): %v", uid, seq, err)
	}
	return ok
}

func seqsOf(msgs []inbox.Message) []uint64 {
	seqs := make([]uint64, len(msgs))
	for i, m := range msgs {
		seqs[i] = m.Seq
	}
	return seqs
}

// checkThread reads all of uid's thread and checks it holds exactly want,
// newest first.
func checkThread(t *testing.T, s inbox.Store, uid, thread string, want ...inbox.Message) {
	t.Helper()
	got := mustThread(t, s, uid, thread, 0, 1000)
	if len(got) != len(want) {
		t.Errorf("Thread(%q, %q) holds Seqs %v, want %v", uid, thread, seqsOf(got), seqsOf(want))
		return
	}
	for i := range got {
		if !reflect.DeepEqual(got[i], want[i]) {
			t.Errorf("Thread(%q, %q)[%d] is\n%s\nwant\n%s", uid, thread, i, show(got[i]), show(want[i]))
		}
	}
}

// checkReadSeqs checks that Read of all of uid's inbox returns want.
func checkReadSeqs(t *testing.T, s inbox.Store, uid string, want ...uint64) {
	t.Helper()
	if got := seqsOf(mustRead(t, s, uid)); !slices.Equal(got, want) {
		t.Errorf("Read(%q) returned Seqs %v, want %v", uid, got, want)
	}
}

// threadWant is one expected entry of Threads.
type threadWant struct {
	thread string
	last   inbox.Message
	unread int
	mark   uint64
}

// checkThreads checks that Threads(uid) returns exactly want, in order.
func checkThreads(t *testing.T, s inbox.Store, uid string, want ...threadWant) {
	t.Helper()
	got := mustThreads(t, s, uid)
	names := func() (g, w []string) {
		for _, x := range got {
			g = append(g, x.Thread)
		}
		for _, x := range want {
			w = append(w, x.thread)
		}
		return g, w
	}
	if len(got) != len(want) {
		g, w := names()
		t.Errorf("Threads(%q) = %q, want %q", uid, g, w)
		return
	}
	for i, w := range want {
		g := got[i]
		if g.Thread != w.thread {
			gn, wn := names()
			t.Errorf("Threads(%q) = %q, want %q (newest first)", uid, gn, wn)
			return
		}
		if g.Unread != w.unread || g.ReadMark != w.mark {
			t.Errorf("Threads(%q) %q: Unread %d ReadMark %d, want %d, %d", uid, w.thread, g.Unread, g.ReadMark, w.unread, w.mark)
		}
		if !reflect.DeepEqual(g.Last, w.last) {
			t.Errorf("Threads(%q) %q: Last is\n%s\nwant\n%s", uid, w.thread, show(g.Last), show(w.last))
		}
	}
}

// checkUnread checks Unread(uid); nil and empty maps are alike.
func checkUnread(t *testing.T, s inbox.Store, uid string, threads map[string]int, types map[int]int) {
	t.Helper()
	got, err := s.Unread(context.Background(), uid)
	if err != nil {
		t.Fatalf("Unread(%q): %v", uid, err)
	}
	total := 0
	for _, n := range threads {
		total += n
	}
	if len(got.Threads) != len(threads) || !maps.Equal(got.Threads, threads) {
		t.Errorf("Unread(%q).Threads = %v, want %v", uid, got.Threads, threads)
	}
	if len(got.NoticeTypes) != len(types) || !maps.Equal(got.NoticeTypes, types) {
		t.Errorf("Unread(%q).NoticeTypes = %v, want %v", uid, got.NoticeTypes, types)
	}
	if got.Total != total {
		t.Errorf("Unread(%q).Total = %d, want %d", uid, got.Total, total)
	}
}

// pageThread reads uid's thread newest first, limit at a time, each page
// from before the last one's oldest Seq, calling between after each page.
func pageThread(t *testing.T, s inbox.Store, uid, thread string, limit int, between func()) [][]inbox.Message {
	t.Helper()
	var pages [][]inbox.Message
	var before uint64
	for {
		page := mustThread(t, s, uid, thread, before, limit)
		if len(page) == 0 {
			return pages
		}
		if len(page) > limit {
			t.Fatalf("Thread(%q, %q, %d, %d) returned %d messages", uid, thread, before, limit, len(page))
		}
		pages = append(pages, page)
		if len(pages) > 100 {
			t.Fatal("paging does not end")
		}
		before = page[len(page)-1].Seq
		if between != nil {
			between()
		}
	}
}

func testThreadPaging(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	// 120 messages between alice and bob, both ways, with other threads'
	// messages in between so the thread's Seqs in alice's inbox have gaps.
	byseq := make(map[uint64]inbox.Message)
	var want []uint64 // alice's thread with bob, newest first
	for i := range 120 {
		var m inbox.Message
		if i%3 == 0 {
			_, m = dm(t, s, "alice", "bob", "ab"+strconv.Itoa(i))
		} else {
			m, _ = dm(t, s, "bob", "alice", "ba"+strconv.Itoa(i))
		}
		byseq[m.Seq] = m
		want = append(want, m.Seq)
		if i%7 == 0 {
			dm(t, s, "carol", "alice", "ca"+strconv.Itoa(i))
		}
		if i%11 == 0 {
			notice(t, s, "alice", 1, "n"+strconv.Itoa(i))
		}
	}
	slices.Reverse(want)

	check := func(t *testing.T, pages [][]inbox.Message) {
		t.Helper()
		var sizes []int
		var got []uint64
		for _, p := range pages {
			sizes = append(sizes, len(p))
			got = append(got, seqsOf(p)...)
		}
		if !slices.Equal(sizes, []int{50, 50, 20}) {
			t.Errorf("page sizes %v, want [50 50 20]", sizes)
		}
		if !slices.Equal(got, want) {
			t.Fatalf("paged Seqs\n%v\nwant (newest first, no gaps or repeats)\n%v", got, want)
		}
		for _, p := range pages {
			for _, m := range p {
				if !reflect.DeepEqual(m, byseq[m.Seq]) {
					t.Fatalf("paged message is\n%s\nwant\n%s", show(m), show(byseq[m.Seq]))
				}
			}
		}
	}
	t.Run("quiet", func(t *testing.T) {
		check(t, pageThread(t, s, "alice", "bob", 50, nil))
	})
	t.Run("appends between pages", func(t *testing.T) {
		var fresh []uint64
		i := 0
		pages := pageThread(t, s, "alice", "bob", 50, func() {
			// New messages land above the first page: paging by before
			// neither repeats nor skips because of them.
			m, _ := dm(t, s, "bob", "alice", "new"+strconv.Itoa(i))
			_, sent := dm(t, s, "alice", "bob", "new-reply"+strconv.Itoa(i))
			dm(t, s, "carol", "alice", "new-carol"+strconv.Itoa(i))
			fresh = append(fresh, m.Seq, sent.Seq)
			i++
		})
		check(t, pages)
		slices.Reverse(fresh)
		newest := mustThread(t, s, "alice", "bob", 0, len(fresh))
		if got := seqsOf(newest); !slices.Equal(got, fresh) {
			t.Errorf("newest page after the walk has Seqs %v, want the new messages %v", got, fresh)
		}
	})
}

func testThreadPagingEdges(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	var thread []uint64 // alice's thread with bob, oldest first
	var other uint64    // a Seq of alice's inbox outside that thread
	for i := range 10 {
		m, _ := dm(t, s, "bob", "alice", strconv.Itoa(i))
		thread = append(thread, m.Seq)
		if i == 4 {
			m, _ := dm(t, s, "carol", "alice", "c")
			other = m.Seq
		}
	}
	last := thread[len(thread)-1]
	tests := []struct {
		name        string
		uid, thread string
		before      uint64
		limit       int
		want        []uint64 // newest first
	}{
		{"from newest", "alice", "bob", 0, 3, []uint64{thread[9], thread[8], thread[7]}},
		{"limit past start", "alice", "bob", thread[2], 50, []uint64{thread[1], thread[0]}},
		{"before is exclusive", "alice", "bob", thread[5], 1, []uint64{thread[4]}},
		{"before far past last", "alice", "bob", last + 1000, 2, []uint64{thread[9], thread[8]}},
		{"before a Seq of another thread", "alice", "bob", other, 1, []uint64{thread[4]}},
		{"before the first", "alice", "bob", thread[0], 10, nil},
		{"before 1", "alice", "bob", 1, 10, nil},
		{"limit 0", "alice", "bob", 0, 0, nil},
		{"negative limit", "alice", "bob", 0, -1, nil},
		{"unknown thread", "alice", "dave", 0, 10, nil},
		{"empty thread name", "alice", "", 0, 10, nil},
		{"unknown inbox", "nobody", "bob", 0, 10, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := seqsOf(mustThread(t, s, tt.uid, tt.thread, tt.before, tt.limit))
			if len(got) != len(tt.want) || (len(got) > 0 && !slices.Equal(got, tt.want)) {
				t.Errorf("Thread(%q, %q, %d, %d) = Seqs %v, want %v", tt.uid, tt.thread, tt.before, tt.limit, got, tt.want)
			}
		})
	}
}

func testThreadsPerPeer(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ab, abSent := dm(t, s, "alice", "bob", "ab")    // bob's, alice's
	ba, baSent := dm(t, s, "bob", "alice", "ba")    // alice's, bob's
	ac, acSent := dm(t, s, "alice", "carol", "ac")  // carol's, alice's
	cb, cbSent := dm(t, s, "carol", "bob", "cb")    // bob's, carol's
	boa, boaSent := dm(t, s, "bo", "alice", "bo-a") // a peer whose name is a prefix of another's
	tests := []struct {
		uid, thread string
		want        []inbox.Message // newest first
	}{
		{"alice", "bob", []inbox.Message{ba, abSent}},
		{"alice", "carol", []inbox.Message{acSent}},
		{"alice", "bo", []inbox.Message{boa}},
		{"alice", "b", nil},
		{"alice", "alice", nil},
		{"bob", "alice", []inbox.Message{baSent, ab}},
		{"bob", "carol", []inbox.Message{cb}},
		{"bob", "bob", nil},
		{"carol", "alice", []inbox.Message{ac}},
		{"carol", "bob", []inbox.Message{cbSent}},
		{"bo", "alice", []inbox.Message{boaSent}},
		{"bo", "bob", nil},
	}
	for _, tt := range tests {
		t.Run(tt.uid+" with "+tt.thread, func(t *testing.T) {
			checkThread(t, s, tt.uid, tt.thread, tt.want...)
		})
	}
	checkThreads(t, s, "alice",
		threadWant{"bo", boa, 1, 0},
		threadWant{"carol", acSent, 0, 0},
		threadWant{"bob", ba, 1, 0},
	)
	checkThreads(t, s, "bob",
		threadWant{"carol", cb, 1, 0},
		threadWant{"alice", baSent, 1, 0},
	)
}

func testNoThreadKinds(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	d, _ := dm(t, s, "bob", "alice", "hello")
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindDelete, Peer: "bob", Ref: d.ID})
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindReceipt, Peer: "bob", Ref: d.ID})
	n := notice(t, s, "alice", 3, "n")
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindReceipt, Peer: "bob", Ref: d.ID})

	checkThread(t, s, "alice", "bob", d)
	checkThread(t, s, "alice", inbox.NoticeThread, n)
	checkThread(t, s, "alice", "", nil...)
	checkThreads(t, s, "alice",
		threadWant{inbox.NoticeThread, n, 1, 0},
		threadWant{"bob", d, 1, 0},
	)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, inbox.NoticeThread: 1}, map[int]int{3: 1})

	// An inbox of only deletions and receipts has no threads.
	mustAppend(t, s, inbox.Message{UID: "dave", Kind: inbox.KindDelete, Peer: "bob", Ref: d.ID})
	mustAppend(t, s, inbox.Message{UID: "dave", Kind: inbox.KindReceipt, Peer: "bob", Ref: d.ID})
	checkThreads(t, s, "dave")
	checkThread(t, s, "dave", "bob")
	checkUnread(t, s, "dave", nil, nil)
}

func testNoticeThread(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	var notices []inbox.Message
	for i := range 6 {
		notices = append(notices, notice(t, s, "alice", i%3+1, "n"+strconv.Itoa(i)))
		if i%2 == 0 {
			dm(t, s, "bob", "alice", "d"+strconv.Itoa(i))
		}
	}
	notice(t, s, "bob", 1, "not alice's")
	slices.Reverse(notices)
	checkThread(t, s, "alice", inbox.NoticeThread, notices...)
	for _, m := range mustThread(t, s, "alice", "bob", 0, 100) {
		if m.Kind != inbox.KindDirect {
			t.Errorf("thread with bob holds a %v message", m.Kind)
		}
	}
	checkThread(t, s, "bob", inbox.NoticeThread, mustRead(t, s, "bob")[3])
}

func testThreads(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	b1, _ := dm(t, s, "bob", "alice", "b1")
	c1, _ := dm(t, s, "carol", "alice", "c1")
	n1 := notice(t, s, "alice", 4, "n1")
	b2, _ := dm(t, s, "bob", "alice", "b2")
	d1in, d1 := dm(t, s, "alice", "dave", "d1")
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindDelete, Peer: "bob", Ref: b1.ID})

	checkThreads(t, s, "alice",
		threadWant{"dave", d1, 0, 0}, // only the sender's copy: nothing unread
		threadWant{"bob", b2, 2, 0},
		threadWant{inbox.NoticeThread, n1, 1, 0},
		threadWant{"carol", c1, 1, 0},
	)

	mustMarkRead(t, s, "alice", "bob", b1.Seq)
	c2, _ := dm(t, s, "carol", "alice", "c2")
	checkThreads(t, s, "alice",
		threadWant{"carol", c2, 2, 0},
		threadWant{"dave", d1, 0, 0},
		threadWant{"bob", b2, 1, b1.Seq},
		threadWant{inbox.NoticeThread, n1, 1, 0},
	)
	mustMarkRead(t, s, "alice", "bob", b2.Seq)
	mustMarkRead(t, s, "alice", inbox.NoticeThread, n1.Seq+100) // past the end
	checkThreads(t, s, "alice",
		threadWant{"carol", c2, 2, 0},
		threadWant{"dave", d1, 0, 0},
		threadWant{"bob", b2, 0, b2.Seq},
		threadWant{inbox.NoticeThread, n1, 0, n1.Seq + 100},
	)

	checkThreads(t, s, "dave", threadWant{"alice", d1in, 1, 0})
	checkThreads(t, s, "nobody")
}

func testUnread(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	var fromBob, fromCarol []inbox.Message
	for i := range 3 {
		m, _ := dm(t, s, "bob", "alice", "b"+strconv.Itoa(i))
		fromBob = append(fromBob, m)
	}
	_, toBob := dm(t, s, "alice", "bob", "reply")
	for i := range 2 {
		m, _ := dm(t, s, "carol", "alice", "c"+strconv.Itoa(i))
		fromCarol = append(fromCarol, m)
	}
	n1 := notice(t, s, "alice", 1, "n1")
	notice(t, s, "alice", 2, "n2")
	notice(t, s, "alice", 1, "n3")
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindDelete, Peer: "bob", Ref: fromBob[0].ID})
	mustAppend(t, s, inbox.Message{UID: "alice", Kind: inbox.KindReceipt, Peer: "bob", Ref: fromBob[0].ID})

	// Only incoming messages count: not alice's reply, nor the deletion or
	// receipt.
	checkUnread(t, s, "alice", map[string]int{"bob": 3, "carol": 2, inbox.NoticeThread: 3}, map[int]int{1: 2, 2: 1})

	mustMarkRead(t, s, "alice", "bob", fromBob[1].Seq)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, "carol": 2, inbox.NoticeThread: 3}, map[int]int{1: 2, 2: 1})
	mustMarkRead(t, s, "alice", inbox.NoticeThread, n1.Seq)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, "carol": 2, inbox.NoticeThread: 2}, map[int]int{1: 1, 2: 1})
	mustMarkRead(t, s, "alice", "carol", fromCarol[1].Seq)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, inbox.NoticeThread: 2}, map[int]int{1: 1, 2: 1})
	// Marking up to alice's own reply reads everything before it.
	mustMarkRead(t, s, "alice", "bob", toBob.Seq)
	checkUnread(t, s, "alice", map[string]int{inbox.NoticeThread: 2}, map[int]int{1: 1, 2: 1})

	// A message after the mark is unread again.
	dm(t, s, "bob", "alice", "b3")
	checkUnread(t, s, "alice", map[string]int{"bob": 1, inbox.NoticeThread: 2}, map[int]int{1: 1, 2: 1})

	// Other inboxes keep their own counts and marks: bob has alice's reply
	// unread, and carol nothing (only her sent copies).
	checkUnread(t, s, "bob", map[string]int{"alice": 1}, nil)
	checkUnread(t, s, "carol", nil, nil)
	checkUnread(t, s, "nobody", nil, nil)
	mustMarkRead(t, s, "bob", "alice", 1<<40)
	checkUnread(t, s, "bob", nil, nil)
	checkUnread(t, s, "alice", map[string]int{"bob": 1, inbox.NoticeThread: 2}, map[int]int{1: 1, 2: 1})
}

func testMarkRead(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	checkReadMark(t, s, "u", "t", 0)
	for _, c := range []struct{ mark, want uint64 }{{5, 5}, {3, 5}, {5, 5}, {0, 5}, {9, 9}, {1 << 40, 1 << 40}} {
		mustMarkRead(t, s, "u", "t", c.mark)
		checkReadMark(t, s, "u", "t", c.want)
	}
	// Marks are per inbox and per thread, also when names share a prefix.
	checkReadMark(t, s, "u", "tt", 0)
	checkReadMark(t, s, "u", "", 0)
	checkReadMark(t, s, "u1", "t", 0)
	checkReadMark(t, s, "v", "t", 0)
	mustMarkRead(t, s, "u1", "t", 2)
	mustMarkRead(t, s, "u", "tt", 3)
	checkReadMark(t, s, "u1", "t", 2)
	checkReadMark(t, s, "u", "tt", 3)
	checkReadMark(t, s, "u", "t", 1<<40)

	// A mark at 0 of a new thread reads as 0.
	mustMarkRead(t, s, "w", "t", 0)
	checkReadMark(t, s, "w", "t", 0)
}

func testReadMarkAnyThread(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	names := []string{inbox.BroadcastInbox, inbox.NoticeThread, "bob", "with/slash", "a:b:c", "スレッド 🧵", "1", "10"}
	for i, name := range names {
		mustMarkRead(t, s, "alice", name, uint64(100+i))
	}
	for i, name := range names {
		checkReadMark(t, s, "alice", name, uint64(100+i))
		checkReadMark(t, s, "bob", name, 0)
	}
	// A mark of a thread that is not in the inbox neither creates a thread
	// nor counts anywhere.
	checkThreads(t, s, "alice")
	checkUnread(t, s, "alice", nil, nil)
}

func testBroadcastInbox(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	var sent []inbox.Message
	for i := range 3 {
		sent = append(sent, notice(t, s, inbox.BroadcastInbox, 5+i%2, "all"+strconv.Itoa(i)))
	}
	checkInbox(t, s, inbox.BroadcastInbox, 3)
	newest := slices.Clone(sent)
	slices.Reverse(newest)
	checkThread(t, s, inbox.BroadcastInbox, inbox.NoticeThread, newest...)
	checkThreads(t, s, inbox.BroadcastInbox, threadWant{inbox.NoticeThread, sent[2], 3, 0})
	checkUnread(t, s, inbox.BroadcastInbox, map[string]int{inbox.NoticeThread: 3}, map[int]int{5: 2, 6: 1})

	// Users keep their marks of it as a thread of their own.
	mustMarkRead(t, s, "alice", inbox.BroadcastInbox, sent[1].Seq)
	checkReadMark(t, s, "alice", inbox.BroadcastInbox, sent[1].Seq)
	checkReadMark(t, s, inbox.BroadcastInbox, inbox.NoticeThread, 0)
	checkUnread(t, s, inbox.BroadcastInbox, map[string]int{inbox.NoticeThread: 3}, map[int]int{5: 2, 6: 1})

	if !mustDelete(t, s, inbox.BroadcastInbox, sent[0].Seq) {
		t.Errorf("Delete(%q, %d) = false, want true", inbox.BroadcastInbox, sent[0].Seq)
	}
	checkThread(t, s, inbox.BroadcastInbox, inbox.NoticeThread, sent[2], sent[1])
	checkBounds(t, s, inbox.BroadcastInbox, sent[1].Seq, sent[2].Seq)
}

func testHistoryClosed(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	dm(t, s, "bob", "alice", "hi")
	mustMarkRead(t, s, "alice", "bob", 1)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Thread", func() error { _, err := s.Thread(ctx, "alice", "bob", 0, 10); return err }},
		{"Threads", func() error { _, err := s.Threads(ctx, "alice", 0, 0); return err }},
		{"MarkRead", func() error { return s.MarkRead(ctx, "alice", "bob", 2) }},
		{"ReadMark", func() error { _, err := s.ReadMark(ctx, "alice", "bob"); return err }},
		{"Unread", func() error { _, err := s.Unread(ctx, "alice"); return err }},
		{"Delete", func() error { _, err := s.Delete(ctx, "alice", 1); return err }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil {
			t.Errorf("%s after Close returned no error", c.name)
		}
	}
}
