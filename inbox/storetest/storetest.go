package storetest

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// Opener opens a fresh, empty store with opts for the test t. It must
// arrange for the store to be closed when t ends, tolerating a Close the
// test already made (the store then returns an error, which it may ignore).
type Opener = func(t *testing.T, opts inbox.Options) inbox.Store

// subtest is one test of the suite.
type subtest struct {
	name string
	fn   func(t *testing.T, open Opener)
}

// Run runs the behaviour suite against the stores open returns, one store
// per subtest.
func Run(t *testing.T, open Opener) {
	tests := []subtest{
		{"AppendAssignsIDTimeSeq", testAppendAssigns},
		{"IDsIncreasePerInbox", testIDsIncrease},
		{"ConcurrentAppends", testConcurrentAppends},
		{"RoundTrip", testRoundTrip},
		{"Read", testRead},
		{"Bounds", testBounds},
		{"InboxesIsolated", testIsolated},
		{"Cursor", testCursor},
		{"Overflow", testOverflow},
		{"ExpireBefore", testExpireBefore},
		{"ExpireBeforePartial", testExpireBeforePartial},
		{"Closed", testClosed},
		{"Pushes", testPushes},
		{"PushesClaimedOnce", testPushesClaimedOnce},
	}
	tests = append(tests, historyTests...)
	tests = append(tests, sessionTests...)
	tests = append(tests, outboxTests...)
	tests = append(tests, submitTests...)
	tests = append(tests, blockTests...)
	tests = append(tests, editTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, open) })
	}
}

func testAppendAssigns(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()

	before := time.Now().UnixMilli()
	got := mustAppend(t, s,
		inbox.Message{UID: "alice", Kind: inbox.KindSent, Peer: "bob", Content: "hi"},
		inbox.Message{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: "hi"},
	)
	after := time.Now().UnixMilli()
	if len(got) != 2 {
		t.Fatalf("Append returned %d entries, want 2", len(got))
	}
	if got[0].ID != got[1].ID {
		t.Errorf("entries of one Append have ids %q and %q, want one shared id", got[0].ID, got[1].ID)
	}
	if got[0].Time != got[1].Time {
		t.Errorf("entries of one Append have times %d and %d, want one shared time", got[0].Time, got[1].Time)
	}
	parseID(t, got[0].ID)
	// A second of slack lets a store take the time from its server's clock.
	if got[0].Time < before-1000 || got[0].Time > after+1000 {
		t.Errorf("Time = %d, want about now (%d..%d)", got[0].Time, before, after)
	}
	for i, m := range got {
		if m.Seq != 1 {
			t.Errorf("entry %d (%s): Seq = %d, want 1 in a new inbox", i, m.UID, m.Seq)
		}
	}
	if got[0].UID != "alice" || got[1].UID != "bob" || got[1].Kind != inbox.KindDirect {
		t.Errorf("Append returned entries out of order: %+v", got)
	}

	next := mustAppend(t, s, inbox.Message{UID: "bob", Kind: inbox.KindDirect, Peer: "carol"})
	if next[0].Seq != 2 {
		t.Errorf("second message to bob: Seq = %d, want 2", next[0].Seq)
	}
	if parseID(t, next[0].ID) <= parseID(t, got[1].ID) {
		t.Errorf("second message id %s not greater than first %s", next[0].ID, got[1].ID)
	}

	first, last, err := s.Bounds(ctx, "bob")
	if err != nil {
		t.Fatalf("Bounds: %v", err)
	}
	if first != 1 || last != 2 {
		t.Errorf("Bounds(bob) = %d, %d, want 1, 2", first, last)
	}
}

func testIDsIncrease(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	const n = 300
	seen := make(map[string]bool)
	for i := range n {
		// Alternate one- and two-inbox appends so the inboxes' Seqs diverge.
		msgs := []inbox.Message{{UID: "a", Kind: inbox.KindNotice, Content: strconv.Itoa(i)}}
		if i%2 == 0 {
			msgs = append(msgs, inbox.Message{UID: "b", Kind: inbox.KindNotice, Content: strconv.Itoa(i)})
		}
		for _, m := range mustAppend(t, s, msgs...) {
			seen[m.ID] = true
		}
	}
	if len(seen) != n {
		t.Errorf("%d appends produced %d distinct ids, want %d", n, len(seen), n)
	}
	checkInbox(t, s, "a", n)
	checkInbox(t, s, "b", n/2)
}

func testConcurrentAppends(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	const workers, per = 8, 200
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				// Half of the workers write both inboxes in one Append (like a
				// direct message and the sender's copy), half only inbox "x".
				msgs := []inbox.Message{{UID: "x", Kind: inbox.KindDirect, Peer: "y", Content: fmt.Sprint(w, "/", i)}}
				if w%2 == 0 {
					msgs = append(msgs, inbox.Message{UID: "y", Kind: inbox.KindSent, Peer: "x", Content: fmt.Sprint(w, "/", i)})
				}
				got, err := s.Append(context.Background(), msgs)
				if err != nil {
					errs <- fmt.Errorf("worker %d append %d: %w", w, i, err)
					return
				}
				if len(got) == 2 && got[0].ID != got[1].ID {
					errs <- fmt.Errorf("worker %d append %d: ids %s and %s differ", w, i, got[0].ID, got[1].ID)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	x := checkInbox(t, s, "x", workers*per)
	y := checkInbox(t, s, "y", workers/2*per)

	// Every entry in y shares its id with exactly one entry in x.
	ids := make(map[string]bool, len(x))
	for _, m := range x {
		if ids[m.ID] {
			t.Fatalf("id %s appears twice in inbox x", m.ID)
		}
		ids[m.ID] = true
	}
	for _, m := range y {
		if !ids[m.ID] {
			t.Fatalf("id %s of y seq %d not found in x", m.ID, m.Seq)
		}
	}
}

func testRoundTrip(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	tests := []struct {
		name string
		msg  inbox.Message
	}{
		{"direct", inbox.Message{
			Kind: inbox.KindDirect, Peer: "bob", Nickname: "Bob", Avatar: "https://example.com/b.png",
			Content: "hello", Extra: `{"k":[1,2]}`,
		}},
		{"sent", inbox.Message{Kind: inbox.KindSent, Peer: "bob", Content: "hello", CID: "client-42"}},
		{"notice", inbox.Message{Kind: inbox.KindNotice, MsgType: 7, Event: "friend.add", Ref: "legacy-123", Content: "{}"}},
		{"negative msgtype", inbox.Message{Kind: inbox.KindNotice, MsgType: -3}},
		{"large msgtype", inbox.Message{Kind: inbox.KindNotice, MsgType: 1 << 40}},
		{"delete", inbox.Message{Kind: inbox.KindDelete, Peer: "bob", Ref: "1234567890123456789"}},
		{"receipt", inbox.Message{Kind: inbox.KindReceipt, Peer: "bob", Ref: "987654321"}},
		{"empty strings", inbox.Message{Kind: inbox.KindDirect}},
		{"unicode", inbox.Message{
			Kind: inbox.KindDirect, Peer: "bob", Nickname: "鲍勃 🐙", Content: "héllo wörld ✓ 你好 \U0001F600",
			Extra: "ünïcödé", Event: "ëvent",
		}},
		{"binary-ish", inbox.Message{Kind: inbox.KindDirect, Content: "a\x00b\nc\td\xff", Extra: "\x00"}},
		{"long", inbox.Message{Kind: inbox.KindDirect, Content: string(make([]byte, 64<<10))}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid := "rt" + strconv.Itoa(i)
			in := tt.msg
			in.UID = uid
			got := mustAppend(t, s, in)[0]
			want := in
			want.Seq, want.ID, want.Time = got.Seq, got.ID, got.Time
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Append returned\n%s\nwant\n%s", show(got), show(want))
			}
			read, err := s.Read(ctx, uid, 1, 10)
			if err != nil {
				t.Fatalf("Read: %v", err)
			}
			if len(read) != 1 {
				t.Fatalf("Read returned %d messages, want 1", len(read))
			}
			if !reflect.DeepEqual(read[0], want) {
				t.Errorf("Read returned\n%s\nwant\n%s", show(read[0]), show(want))
			}
		})
	}
}

func testRead(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	for i := 1; i <= 10; i++ {
		mustAppend(t, s, inbox.Message{UID: "r", Kind: inbox.KindNotice, Content: strconv.Itoa(i)})
	}
	tests := []struct {
		name        string
		uid         string
		from        uint64
		limit       int
		first, last uint64 // expected Seq range, 0, 0 for none
	}{
		{"all from 1", "r", 1, 100, 1, 10},
		{"from 0 is from 1", "r", 0, 100, 1, 10},
		{"limit", "r", 1, 3, 1, 3},
		{"middle with limit", "r", 5, 3, 5, 7},
		{"limit past end", "r", 8, 100, 8, 10},
		{"exact limit", "r", 1, 10, 1, 10},
		{"last only", "r", 10, 5, 10, 10},
		{"from past last", "r", 11, 5, 0, 0},
		{"from far past last", "r", 1 << 62, 5, 0, 0},
		{"unknown inbox", "nobody", 1, 5, 0, 0},
		{"limit 1", "r", 4, 1, 4, 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Read(ctx, tt.uid, tt.from, tt.limit)
			if err != nil {
				t.Fatalf("Read(%q, %d, %d): %v", tt.uid, tt.from, tt.limit, err)
			}
			want := 0
			if tt.last != 0 {
				want = int(tt.last - tt.first + 1)
			}
			if len(got) != want {
				t.Fatalf("Read(%q, %d, %d) returned %d messages, want %d", tt.uid, tt.from, tt.limit, len(got), want)
			}
			for i, m := range got {
				seq := tt.first + uint64(i)
				if m.Seq != seq || m.Content != strconv.FormatUint(seq, 10) || m.UID != tt.uid {
					t.Errorf("message %d: uid %q seq %d content %q, want %q, %d, %q", i, m.UID, m.Seq, m.Content, tt.uid, seq, strconv.FormatUint(seq, 10))
				}
			}
		})
	}
}

func testBounds(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	checkBounds(t, s, "b", 0, 0)
	mustAppend(t, s, inbox.Message{UID: "b", Kind: inbox.KindNotice})
	checkBounds(t, s, "b", 1, 1)
	mustAppend(t, s, inbox.Message{UID: "b", Kind: inbox.KindNotice})
	mustAppend(t, s, inbox.Message{UID: "b", Kind: inbox.KindNotice})
	checkBounds(t, s, "b", 1, 3)
	checkBounds(t, s, "c", 0, 0)
}

func testIsolated(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	// Uids that are prefixes of each other, or differ only past a prefix,
	// must not see each other's messages or cursors.
	uids := []string{"1", "10", "100", "1.0", "1-", "1_", "A", "a", "x.y-z_0"}
	for i, uid := range uids {
		for range i + 1 {
			mustAppend(t, s, inbox.Message{UID: uid, Kind: inbox.KindNotice, Content: uid})
		}
		if err := s.SetCursor(ctx, uid, "dev", uint64(i+1)); err != nil {
			t.Fatalf("SetCursor(%q): %v", uid, err)
		}
	}
	for i, uid := range uids {
		n := i + 1
		got, err := s.Read(ctx, uid, 0, 100)
		if err != nil {
			t.Fatalf("Read(%q): %v", uid, err)
		}
		if len(got) != n {
			t.Errorf("Read(%q) returned %d messages, want %d", uid, len(got), n)
		}
		for _, m := range got {
			if m.UID != uid || m.Content != uid {
				t.Errorf("Read(%q) returned a message of %q (content %q)", uid, m.UID, m.Content)
			}
		}
		checkBounds(t, s, uid, 1, uint64(n))
		checkCursor(t, s, uid, "dev", uint64(n), true)
	}
}

func testCursor(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	set := func(uid, dev string, seq uint64) {
		t.Helper()
		if err := s.SetCursor(ctx, uid, dev, seq); err != nil {
			t.Fatalf("SetCursor(%q, %q, %d): %v", uid, dev, seq, err)
		}
	}
	checkCursor(t, s, "u", "phone", 0, false)

	set("u", "phone", 5)
	checkCursor(t, s, "u", "phone", 5, true)
	set("u", "phone", 3)
	checkCursor(t, s, "u", "phone", 5, true) // never backward
	set("u", "phone", 5)
	checkCursor(t, s, "u", "phone", 5, true)
	set("u", "phone", 9)
	checkCursor(t, s, "u", "phone", 9, true)

	checkCursor(t, s, "u", "tablet", 0, false)
	checkCursor(t, s, "u", "phone2", 0, false)
	checkCursor(t, s, "u", "phon", 0, false)
	checkCursor(t, s, "v", "phone", 0, false)

	// Device ids are arbitrary bytes.
	for i, dev := range []string{"dev/with/slashes", "dev\x00nul", "设备 📱", "a:b:c"} {
		set("u", dev, uint64(100+i))
		checkCursor(t, s, "u", dev, uint64(100+i), true)
	}
	checkCursor(t, s, "u", "dev", 0, false)
	checkCursor(t, s, "u", "phone", 9, true)

	// A first cursor at 0 exists: the device has connected and seen nothing.
	set("w", "new", 0)
	checkCursor(t, s, "w", "new", 0, true)
}

func testOverflow(t *testing.T, open Opener) {
	drops := &dropLog{}
	s := open(t, inbox.Options{MaxPerInbox: 3, OnDrop: drops.record})
	ctx := context.Background()

	for i := 1; i <= 5; i++ {
		mustAppend(t, s,
			inbox.Message{UID: "full", Kind: inbox.KindNotice, Content: strconv.Itoa(i)},
			inbox.Message{UID: "fuller", Kind: inbox.KindNotice, Content: strconv.Itoa(i)},
		)
	}
	mustAppend(t, s, inbox.Message{UID: "fuller", Kind: inbox.KindNotice, Content: "6"})
	mustAppend(t, s, inbox.Message{UID: "small", Kind: inbox.KindNotice, Content: "1"})

	for _, c := range []struct {
		uid         string
		first, last uint64
		dropped     int
	}{
		{"full", 3, 5, 2},
		{"fuller", 4, 6, 3},
		{"small", 1, 1, 0},
	} {
		got, err := s.Read(ctx, c.uid, 0, 100)
		if err != nil {
			t.Fatalf("Read(%q): %v", c.uid, err)
		}
		if len(got) != int(c.last-c.first+1) {
			t.Fatalf("Read(%q) returned %d messages, want %d", c.uid, len(got), c.last-c.first+1)
		}
		for i, m := range got {
			if want := c.first + uint64(i); m.Seq != want || m.Content != strconv.FormatUint(want, 10) {
				t.Errorf("%s message %d: seq %d content %q, want seq %d", c.uid, i, m.Seq, m.Content, want)
			}
		}
		checkBounds(t, s, c.uid, c.first, c.last)
		if n := drops.count(c.uid, "overflow"); n != c.dropped {
			t.Errorf("OnDrop(%q, overflow) total = %d, want %d", c.uid, n, c.dropped)
		}
	}
	if n := drops.count("full", "expired"); n != 0 {
		t.Errorf("OnDrop(full, expired) total = %d, want 0", n)
	}

	// Seqs are never reused: the next message continues after the highest.
	m := mustAppend(t, s, inbox.Message{UID: "full", Kind: inbox.KindNotice, Content: "6"})
	if m[0].Seq != 6 {
		t.Errorf("next Seq after overflow = %d, want 6", m[0].Seq)
	}
	checkBounds(t, s, "full", 4, 6)
}

func testExpireBefore(t *testing.T, open Opener) {
	drops := &dropLog{}
	s := open(t, inbox.Options{Retention: time.Hour, OnDrop: drops.record})
	ctx := context.Background()

	// Many inboxes, so the sweep has to move from one to the next.
	const inboxes = 20
	total := 0
	for i := range inboxes {
		uid := "e" + strconv.Itoa(i)
		for range i%3 + 1 {
			mustAppend(t, s, inbox.Message{UID: uid, Kind: inbox.KindNotice})
			total++
		}
	}
	if err := s.SetCursor(ctx, "e0", "dev", 1); err != nil {
		t.Fatalf("SetCursor: %v", err)
	}

	n, err := s.ExpireBefore(ctx, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatalf("ExpireBefore(an hour ago): %v", err)
	}
	if n != 0 {
		t.Errorf("ExpireBefore(an hour ago) dropped %d, want 0", n)
	}

	// A time in the future expires everything appended so far.
	n, err = s.ExpireBefore(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("ExpireBefore(in an hour): %v", err)
	}
	if n != total {
		t.Errorf("ExpireBefore(in an hour) dropped %d, want %d", n, total)
	}
	for i := range inboxes {
		uid := "e" + strconv.Itoa(i)
		held := i%3 + 1
		if got := drops.count(uid, "expired"); got != held {
			t.Errorf("OnDrop(%q, expired) total = %d, want %d", uid, got, held)
		}
		got, err := s.Read(ctx, uid, 0, 100)
		if err != nil {
			t.Fatalf("Read(%q): %v", uid, err)
		}
		if len(got) != 0 {
			t.Errorf("Read(%q) after expiry returned %d messages, want 0", uid, len(got))
		}
		// Nothing is held, but the highest Seq is remembered.
		checkBounds(t, s, uid, 0, uint64(held))
	}
	// Cursors are not messages: expiry leaves them alone.
	checkCursor(t, s, "e0", "dev", 1, true)

	n, err = s.ExpireBefore(ctx, time.Now().Add(time.Hour))
	if err != nil {
		t.Fatalf("second ExpireBefore: %v", err)
	}
	if n != 0 {
		t.Errorf("second ExpireBefore dropped %d, want 0", n)
	}

	m := mustAppend(t, s, inbox.Message{UID: "e2", Kind: inbox.KindNotice})
	if want := uint64(2%3 + 2); m[0].Seq != want {
		t.Errorf("Seq after expiry = %d, want %d", m[0].Seq, want)
	}
	checkBounds(t, s, "e2", m[0].Seq, m[0].Seq)
}

func testExpireBeforePartial(t *testing.T, open Opener) {
	drops := &dropLog{}
	s := open(t, inbox.Options{Retention: time.Hour, OnDrop: drops.record})
	ctx := context.Background()

	mustAppend(t, s,
		inbox.Message{UID: "p", Kind: inbox.KindNotice, Content: "old"},
		inbox.Message{UID: "q", Kind: inbox.KindNotice, Content: "old"},
	)
	mustAppend(t, s, inbox.Message{UID: "p", Kind: inbox.KindNotice, Content: "old"})
	// Message times are in milliseconds: wait for the clock to pass the old
	// messages' millisecond so the new ones are strictly later.
	lastOld := mustRead(t, s, "p")[1].Time
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().UnixMilli() <= lastOld+1 {
		if time.Now().After(deadline) {
			t.Fatal("wall clock did not advance")
		}
		time.Sleep(time.Millisecond)
	}
	fresh := mustAppend(t, s, inbox.Message{UID: "p", Kind: inbox.KindNotice, Content: "new"})
	if fresh[0].Time <= lastOld {
		t.Fatalf("new message time %d not after old %d", fresh[0].Time, lastOld)
	}

	n, err := s.ExpireBefore(ctx, time.UnixMilli(fresh[0].Time))
	if err != nil {
		t.Fatalf("ExpireBefore: %v", err)
	}
	if n != 3 {
		t.Errorf("ExpireBefore dropped %d, want 3", n)
	}
	got := mustRead(t, s, "p")
	if len(got) != 1 || got[0].Content != "new" || got[0].Seq != 3 {
		t.Errorf("after expiry p holds %+v, want only the new message at seq 3", got)
	}
	checkBounds(t, s, "p", 3, 3)
	checkBounds(t, s, "q", 0, 1)
	if c := drops.count("p", "expired"); c != 2 {
		t.Errorf("OnDrop(p, expired) total = %d, want 2", c)
	}
	if c := drops.count("q", "expired"); c != 1 {
		t.Errorf("OnDrop(q, expired) total = %d, want 1", c)
	}
}

func testClosed(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	mustAppend(t, s, inbox.Message{UID: "c", Kind: inbox.KindNotice})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := []struct {
		name string
		call func() error
	}{
		{"Append", func() error {
			_, err := s.Append(ctx, []inbox.Message{{UID: "c", Kind: inbox.KindNotice}})
			return err
		}},
		{"Read", func() error { _, err := s.Read(ctx, "c", 0, 10); return err }},
		{"Bounds", func() error { _, _, err := s.Bounds(ctx, "c"); return err }},
		{"Cursor", func() error { _, _, err := s.Cursor(ctx, "c", "d"); return err }},
		{"SetCursor", func() error { return s.SetCursor(ctx, "c", "d", 1) }},
		{"ExpireBefore", func() error { _, err := s.ExpireBefore(ctx, time.Now()); return err }},
	}
	for _, c := range calls {
		if err := c.call(); err == nil {
			t.Errorf("%s after Close returned no error", c.name)
		}
	}
}
