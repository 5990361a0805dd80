package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
	"github.com/inboxmq/inboxmq/inbox/storetest"
)

// openStore opens a store in dir and closes it when t ends, unless the
// test closed it already.
func openStore(t testing.TB, dir string, opts inbox.Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, inbox.ErrClosed) {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T, opts inbox.Options) inbox.Store {
		return openStore(t, t.TempDir(), opts)
	})
}

func TestReopen(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := inbox.Options{MaxPerInbox: 4, NodeID: 3}
	s := openStore(t, dir, opts)

	var lastID uint64
	for i := range 6 {
		got, err := s.Append(ctx, []inbox.Message{
			{UID: "alice", Kind: inbox.KindSent, Peer: "bob", Content: strconv.Itoa(i), CID: "c" + strconv.Itoa(i)},
			{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: strconv.Itoa(i), Nickname: "Alice"},
		})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		lastID = mustParse(t, got[0].ID)
	}
	if _, err := s.Append(ctx, []inbox.Message{{UID: "gone", Kind: inbox.KindNotice}}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if n, err := s.ExpireBefore(ctx, time.Now().Add(time.Hour)); err != nil || n != 9 {
		// alice and bob hold 4 each after overflow, gone holds 1.
		t.Fatalf("ExpireBefore = %d, %v, want 9, nil", n, err)
	}
	for i := range 3 {
		if _, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindDirect, Content: "after " + strconv.Itoa(i)}}); err != nil {
			t.Fatalf("Append: %v", err)
		}
	}
	if err := s.SetCursor(ctx, "bob", "phone", 7); err != nil {
		t.Fatalf("SetCursor: %v", err)
	}
	if err := s.SetCursor(ctx, "bob", "laptop", 9); err != nil {
		t.Fatalf("SetCursor: %v", err)
	}
	before := map[string][]inbox.Message{}
	for _, uid := range []string{"alice", "bob", "gone"} {
		before[uid] = mustReadAll(t, s, uid)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	s = openStore(t, dir, opts)
	// A clock an hour behind must not make ids go back.
	s.now = func() time.Time { return time.Now().Add(-time.Hour) }
	for uid, want := range before {
		got := mustReadAll(t, s, uid)
		if len(got) != len(want) {
			t.Fatalf("after reopen %s holds %d messages, want %d", uid, len(got), len(want))
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("after reopen %s[%d] = %+v, want %+v", uid, i, got[i], want[i])
			}
		}
	}
	for _, c := range []struct {
		uid         string
		first, last uint64
	}{{"alice", 0, 6}, {"bob", 7, 9}, {"gone", 0, 1}, {"nobody", 0, 0}} {
		first, last, err := s.Bounds(ctx, c.uid)
		if err != nil || first != c.first || last != c.last {
			t.Errorf("after reopen Bounds(%s) = %d, %d, %v, want %d, %d", c.uid, first, last, err, c.first, c.last)
		}
	}
	for dev, want := range map[string]uint64{"phone": 7, "laptop": 9} {
		seq, ok, err := s.Cursor(ctx, "bob", dev)
		if err != nil || !ok || seq != want {
			t.Errorf("after reopen Cursor(bob, %s) = %d, %v, %v, want %d, true", dev, seq, ok, err, want)
		}
	}

	got, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindNotice}, {UID: "bob", Kind: inbox.KindNotice}})
	if err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
	if got[0].Seq != 7 || got[1].Seq != 10 {
		t.Errorf("Seqs after reopen = %d, %d, want 7, 10", got[0].Seq, got[1].Seq)
	}
	if id := mustParse(t, got[0].ID); id <= lastID {
		t.Errorf("id after reopen %d not greater than %d issued before", id, lastID)
	}
	if node := mustParse(t, got[0].ID) >> 12 & 1023; node != 3 {
		t.Errorf("id carries node %d, want 3", node)
	}
	// Overflow still counts what was held before the restart.
	first, last, err := s.Bounds(ctx, "bob")
	if err != nil || first != 7 || last != 10 {
		t.Errorf("Bounds(bob) = %d, %d, %v, want 7, 10", first, last, err)
	}
}

func TestClosedErrors(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	calls := map[string]func() error{
		"Append":       func() error { _, err := s.Append(ctx, []inbox.Message{{UID: "u"}}); return err },
		"Read":         func() error { _, err := s.Read(ctx, "u", 1, 1); return err },
		"Bounds":       func() error { _, _, err := s.Bounds(ctx, "u"); return err },
		"Cursor":       func() error { _, _, err := s.Cursor(ctx, "u", "d"); return err },
		"SetCursor":    func() error { return s.SetCursor(ctx, "u", "d", 1) },
		"ExpireBefore": func() error { _, err := s.ExpireBefore(ctx, time.Now()); return err },
		"Thread":       func() error { _, err := s.Thread(ctx, "u", "t", 0, 1); return err },
		"Threads":      func() error { _, err := s.Threads(ctx, "u", 0, 0); return err },
		"MarkRead":     func() error { return s.MarkRead(ctx, "u", "t", 1) },
		"ReadMark":     func() error { _, err := s.ReadMark(ctx, "u", "t"); return err },
		"Unread":       func() error { _, err := s.Unread(ctx, "u"); return err },
		"Delete":       func() error { _, err := s.Delete(ctx, "u", 1); return err },
		"Close":        s.Close,
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, inbox.ErrClosed) {
			t.Errorf("%s after Close = %v, want inbox.ErrClosed", name, err)
		}
	}
}

// TestCloseWhileAppending checks that Close waits for appends in flight
// and later appends fail cleanly instead of reaching a closed Pebble.
func TestCloseWhileAppending(t *testing.T) {
	s := openStore(t, t.TempDir(), inbox.Options{})
	var wg sync.WaitGroup
	var appended atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				_, err := s.Append(context.Background(), []inbox.Message{{UID: "u" + strconv.Itoa(w), Content: strconv.Itoa(i)}})
				if errors.Is(err, inbox.ErrClosed) {
					return
				}
				if err != nil {
					t.Errorf("Append: %v", err)
					return
				}
				appended.Add(1)
			}
		})
	}
	// Close once appends are under way.
	for deadline := time.Now().Add(5 * time.Second); appended.Load() < 20; {
		if time.Now().After(deadline) {
			t.Fatal("appends did not get under way")
		}
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	wg.Wait()
}

func TestBadInput(t *testing.T) {
	ctx := context.Background()
	if _, err := Open(t.TempDir(), inbox.Options{NodeID: 1024}); err == nil {
		t.Error("Open with NodeID 1024 succeeded")
	}
	if _, err := Open(t.TempDir(), inbox.Options{MaxPerInbox: -1}); err == nil {
		t.Error("Open with MaxPerInbox -1 succeeded")
	}
	for _, size := range []int64{-1, 1 << 19, 2 << 30} {
		if _, err := OpenTuned(t.TempDir(), inbox.Options{}, Tuning{MemTableSize: size}); err == nil {
			t.Errorf("Open with a %d-byte memtable succeeded", size)
		}
	}
	for _, d := range []time.Duration{-time.Millisecond, MaxWALSyncInterval + time.Nanosecond} {
		if _, err := OpenTuned(t.TempDir(), inbox.Options{}, Tuning{WALSyncInterval: d}); err == nil {
			t.Errorf("Open with a WAL sync interval of %s succeeded", d)
		}
	}
	small, err := OpenTuned(t.TempDir(), inbox.Options{}, Tuning{MemTableSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if err := small.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStore(t, t.TempDir(), inbox.Options{})
	for _, uid := range []string{"", "a\x00b"} {
		if _, err := s.Append(ctx, []inbox.Message{{UID: "ok"}, {UID: uid}}); err == nil {
			t.Errorf("Append to uid %q succeeded", uid)
		}
		if _, err := s.Read(ctx, uid, 1, 10); err == nil {
			t.Errorf("Read of uid %q succeeded", uid)
		}
	}
	// A rejected Append writes nothing, not even its valid entries.
	if first, last, err := s.Bounds(ctx, "ok"); err != nil || first != 0 || last != 0 {
		t.Errorf("Bounds(ok) = %d, %d, %v, want 0, 0, nil", first, last, err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Append(cancelled, []inbox.Message{{UID: "ok"}}); !errors.Is(err, context.Canceled) {
		t.Errorf("Append with cancelled context = %v, want context.Canceled", err)
	}
	if got, err := s.Append(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("Append(nil) = %v, %v, want nothing", got, err)
	}
	if got, err := s.Read(ctx, "ok", 1, 0); err != nil || len(got) != 0 {
		t.Errorf("Read limit 0 = %v, %v, want nothing", got, err)
	}
}

func TestCorruptValue(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	if _, err := s.Append(ctx, []inbox.Message{{UID: "u", Content: "x"}}); err != nil {
		t.Fatalf("Append: %v", err)
	}
	if err := s.db.Set(appendMsgKey(nil, "u", 1), []byte{varcodec.Version1, 0xff}, pebble.Sync); err != nil {
		t.Fatalf("Set: %v", err)
	}
	if _, err := s.Read(ctx, "u", 1, 10); !errors.Is(err, errCorrupt) {
		t.Errorf("Read of corrupt value = %v, want errCorrupt", err)
	}
	if _, err := s.ExpireBefore(ctx, time.Now()); !errors.Is(err, errCorrupt) {
		t.Errorf("ExpireBefore over corrupt value = %v, want errCorrupt", err)
	}
}

func mustParse(t *testing.T, id string) uint64 {
	t.Helper()
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		t.Fatalf("id %q: %v", id, err)
	}
	return n
}

func mustReadAll(t *testing.T, s *Store, uid string) []inbox.Message {
	t.Helper()
	got, err := s.Read(context.Background(), uid, 0, 1000)
	if err != nil {
		t.Fatalf("Read(%s): %v", uid, err)
	}
	return got
}

// TestWALSyncInterval: with an interval, syncs are at least that far
// apart, so appends that each wait for their own sync take at least the
// intervals between them; every one is still durable when it returns
// (TestReopen's kind of check: all there after a reopen).
func TestWALSyncInterval(t *testing.T) {
	const interval, appends = 10 * time.Millisecond, 6
	dir := t.TempDir()
	var syncs atomic.Int64
	s, err := OpenTuned(dir, inbox.Options{}, Tuning{WALSyncInterval: interval, OnWALSync: func(time.Duration) { syncs.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	for i := range appends {
		if _, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: fmt.Sprint(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	// A lower bound only: a slow machine makes it longer, never shorter.
	if took := time.Since(start); took < (appends-1)*interval {
		t.Errorf("%d appends, each waiting for its sync, took %s; want at least %s", appends, took, (appends-1)*interval)
	}
	if n := syncs.Load(); n < appends {
		t.Errorf("%d WAL syncs for %d appends that each waited for one", n, appends)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStore(t, dir, inbox.Options{})
	if n := len(mustReadAll(t, s, "bob")); n != appends {
		t.Errorf("bob holds %d messages after reopen, want %d", n, appends)
	}
}
