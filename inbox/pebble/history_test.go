package pebblestore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// checkConsistent scans the whole database and checks what the store
// relies on: every held message with a thread has exactly one index entry,
// with its kind and msgtype, and there are no others; every head on disk,
// with the messages appended after it (layout 3, heads.go), and every
// cached head match the messages held, and no head on disk lags by
// headEvery or more.
func checkConsistent(t *testing.T, s *Store) {
	t.Helper()
	type stat struct {
		first, held uint64
		seqs        []uint64
	}
	held := map[string]*stat{}
	want := map[string]string{} // index key -> value
	scan(t, s, msgSpaceStart, msgSpaceEnd, func(k, v []byte) {
		uid, seq, err := parseMsgKey(k)
		if err != nil {
			t.Fatal(err)
		}
		var m inbox.Message
		if err := decodeMessage(v, &m); err != nil {
			t.Fatalf("%s/%d: %v", uid, seq, err)
		}
		st := held[string(uid)]
		if st == nil {
			st = &stat{first: seq}
			held[string(uid)] = st
		}
		st.held++
		st.seqs = append(st.seqs, seq)
		// Layout 1 took peers with 0x00; they stay outside every thread.
		if th := m.Thread(); th != "" && !strings.Contains(th, "\x00") {
			want[string(appendIndexKey(nil, string(uid), th, seq))] = string(appendIndexValue(nil, m.Kind, m.MsgType))
		}
	})
	got := map[string]string{}
	scan(t, s, []byte{prefixIndex}, []byte{prefixIndex + 1}, func(k, v []byte) { got[string(k)] = string(v) })
	for k, v := range want {
		if gv, ok := got[k]; !ok || gv != v {
			t.Errorf("index entry %q = %x, %v, want %x", k, gv, ok, v)
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("stray index entry %q", k)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	check := func(uid string, h head) {
		d := h // the stored head with the appends after it
		if st := held[uid]; st != nil {
			for _, seq := range st.seqs {
				if seq > h.last {
					if d.held == 0 {
						d.first = seq
					}
					d.held++
					d.last = seq
				}
			}
		}
		if d.last-h.last >= headEvery {
			t.Errorf("head of %s on disk lags by %d appends, want under %d", uid, d.last-h.last, headEvery)
		}
		w := head{first: d.last + 1, last: d.last}
		if st := held[uid]; st != nil {
			w.first, w.held = st.first, st.held
		}
		if d != w {
			t.Errorf("head of %s on disk %+v, with the appends after it %+v, want %+v", uid, h, d, w)
		}
		if c, ok := s.heads[uid]; ok && c != w {
			t.Errorf("cached head of %s = %+v, want %+v", uid, c, w)
		}
		delete(held, uid)
	}
	scan(t, s, []byte{prefixHead}, []byte{prefixHead + 1}, func(k, v []byte) {
		h, err := decodeHead(v)
		if err != nil {
			t.Fatalf("head of %s: %v", k[1:], err)
		}
		check(string(k[1:]), h)
	})
	for uid := range held { // no head written yet: every message is an append
		check(uid, head{first: 1})
	}
}

func scan(t *testing.T, s *Store, lower, upper []byte, fn func(k, v []byte)) {
	t.Helper()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		t.Fatal(err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		fn(it.Key(), it.Value())
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestConsistentUnderLoad races appends (with overflow), deletes, expiry
// sweeps and reads, then checks the index and heads against the messages.
func TestConsistentUnderLoad(t *testing.T) {
	s := openStore(t, t.TempDir(), inbox.Options{MaxPerInbox: 20, Retention: time.Hour})
	ctx := context.Background()
	uids := []string{"a", "b", "c", "d"}
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for w := range 4 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for i := range 150 {
				from, to := uids[r.IntN(len(uids))], uids[r.IntN(len(uids))]
				msgs := []inbox.Message{
					{UID: to, Kind: inbox.KindDirect, Peer: from, Content: strconv.Itoa(i)},
					{UID: from, Kind: inbox.KindSent, Peer: to, Content: strconv.Itoa(i)},
				}
				switch r.IntN(4) {
				case 0:
					msgs = []inbox.Message{{UID: to, Kind: inbox.KindNotice, MsgType: r.IntN(3)}}
				case 1:
					msgs = append(msgs, inbox.Message{UID: to, Kind: inbox.KindReceipt, Peer: from})
				}
				if _, err := s.Append(ctx, msgs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	for w := range 2 {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(w), 2))
			for range 300 {
				uid := uids[r.IntN(len(uids))]
				_, last, err := s.Bounds(ctx, uid)
				if err == nil && last > 0 {
					_, err = s.Delete(ctx, uid, 1+r.Uint64N(last))
				}
				if err == nil {
					_, err = s.Threads(ctx, uid, 0, 0)
				}
				if err == nil {
					_, err = s.Unread(ctx, uid)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			// Expire roughly the older half: messages of the last few
			// milliseconds stay.
			if _, err := s.ExpireBefore(ctx, time.Now().Add(-2*time.Millisecond)); err != nil {
				errs <- err
				return
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	checkConsistent(t, s)
	for _, uid := range uids {
		// Bounds and Read agree on what is held, and none exceeds the limit.
		msgs := mustReadAll(t, s, uid)
		first, _, err := s.Bounds(ctx, uid)
		if err != nil {
			t.Fatal(err)
		}
		if len(msgs) > 20 || (len(msgs) > 0 && msgs[0].Seq != first) || (len(msgs) == 0 && first != 0) {
			t.Errorf("%s: Read holds %d messages from %v, Bounds first %d", uid, len(msgs), seqs(msgs), first)
		}
	}
}

func seqs(msgs []inbox.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.Seq
	}
	return out
}

func TestReopenHistory(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	opts := inbox.Options{MaxPerInbox: 4}
	s := openStore(t, dir, opts)
	for i := range 4 {
		if _, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if ok, err := s.Delete(ctx, "alice", 2); !ok || err != nil {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if err := s.MarkRead(ctx, "alice", "bob", 3); err != nil {
		t.Fatal(err)
	}
	beforeThreads, err := s.Threads(ctx, "alice", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStore(t, dir, opts)
	checkConsistent(t, s)
	threads, err := s.Threads(ctx, "alice", 0, 0)
	if err != nil || !slices.Equal(threads, beforeThreads) {
		t.Errorf("after reopen Threads = %+v, %v, want %+v", threads, err, beforeThreads)
	}
	// The held count survived: three are held, so one more append drops
	// nothing.
	if _, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindNotice}}); err != nil {
		t.Fatal(err)
	}
	if got := seqs(mustReadAll(t, s, "alice")); !slices.Equal(got, []uint64{1, 3, 4, 5}) {
		t.Errorf("after reopen and append alice holds %v, want [1 3 4 5]", got)
	}
	u, err := s.Unread(ctx, "alice")
	if err != nil || u.Total != 2 || u.Threads["bob"] != 1 || u.Threads[inbox.NoticeThread] != 1 {
		t.Errorf("after reopen Unread = %+v, %v, want bob 1, notices 1", u, err)
	}
	checkConsistent(t, s)
}

// writeV1 writes a store in layout 1 as the previous build did: messages,
// 8-byte heads, a cursor, the last id and version 1.
func writeV1(t *testing.T, dir string, msgs []inbox.Message, lastSeq map[string]uint64) {
	t.Helper()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}, FormatMajorVersion: pebble.FormatNewest})
	if err != nil {
		t.Fatal(err)
	}
	b := db.NewBatch()
	for i := range msgs {
		m := &msgs[i]
		id, _ := strconv.ParseUint(m.ID, 10, 64)
		key := appendMsgKey(nil, m.UID, m.Seq)
		if err := b.Set(key, appendMessage(nil, id, m), nil); err != nil {
			t.Fatal(err)
		}
	}
	for uid, last := range lastSeq {
		if err := b.Set(headKey(uid), encodeUint(last), nil); err != nil {
			t.Fatal(err)
		}
	}
	for k, v := range map[string][]byte{
		string(cursorKey("alice", "phone")): encodeUint(2),
		string(keyLastID):                   encodeUint(1000),
		string(keyVersion):                  encodeUint(1),
	} {
		if err := b.Set([]byte(k), v, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(b.Close(), db.Close()); err != nil {
		t.Fatal(err)
	}
}

func TestUpgradeV1(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	msg := func(uid string, seq uint64, kind inbox.Kind, peer string, msgType int) inbox.Message {
		return inbox.Message{UID: uid, Seq: seq, ID: strconv.FormatUint(900+seq, 10), Time: 1, Kind: kind, Peer: peer, MsgType: msgType, Content: uid + strconv.FormatUint(seq, 10)}
	}
	old := []inbox.Message{
		// alice's Seqs 1 and 2 were dropped by retention.
		msg("alice", 3, inbox.KindDirect, "bob", 0),
		msg("alice", 4, inbox.KindSent, "bob", 0),
		msg("alice", 5, inbox.KindNotice, "", 7),
		msg("alice", 6, inbox.KindReceipt, "bob", 0),
		msg("alice", 7, inbox.KindDirect, "carol", 0),
		msg("alice", 8, inbox.KindDirect, "nul\x00peer", 0), // layout 1 took any peer
		msg("bob", 1, inbox.KindSent, "alice", 0),
	}
	writeV1(t, dir, old, map[string]uint64{"alice": 8, "bob": 1, "gone": 4})

	s := openStore(t, dir, inbox.Options{MaxPerInbox: 6})
	checkConsistent(t, s)
	for _, c := range []struct {
		uid         string
		first, last uint64
	}{{"alice", 3, 8}, {"bob", 1, 1}, {"gone", 0, 4}} {
		first, last, err := s.Bounds(ctx, c.uid)
		if err != nil || first != c.first || last != c.last {
			t.Errorf("Bounds(%s) = %d, %d, %v, want %d, %d", c.uid, first, last, err, c.first, c.last)
		}
	}
	threads, err := s.Threads(ctx, "alice", 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, th := range threads {
		names = append(names, fmt.Sprintf("%s@%d/%d", th.Thread, th.Last.Seq, th.Unread))
	}
	if want := []string{"carol@7/1", inbox.NoticeThread + "@5/1", "bob@4/1"}; !slices.Equal(names, want) {
		t.Errorf("Threads(alice) after upgrade = %q, want %q", names, want)
	}
	u, err := s.Unread(ctx, "alice")
	if err != nil || !maps.Equal(u.NoticeTypes, map[int]int{7: 1}) || u.Total != 3 {
		t.Errorf("Unread(alice) after upgrade = %+v, %v", u, err)
	}
	if seq, ok, err := s.Cursor(ctx, "alice", "phone"); err != nil || !ok || seq != 2 {
		t.Errorf("Cursor after upgrade = %d, %v, %v, want 2", seq, ok, err)
	}
	// The held count was rebuilt: alice holds 6, so the next append drops
	// the oldest, and its index entry with it.
	got, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "dave"}})
	if err != nil {
		t.Fatal(err)
	}
	if id := mustParse(t, got[0].ID); id <= 1000 {
		t.Errorf("id after upgrade %d, want above the last id 1000", id)
	}
	if got := seqs(mustReadAll(t, s, "alice")); !slices.Equal(got, []uint64{4, 5, 6, 7, 8, 9}) {
		t.Errorf("after upgrade and append alice holds %v", got)
	}
	checkConsistent(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	// The upgrade is done once: the store now opens as layout 2.
	s = openStore(t, dir, inbox.Options{})
	if v, _, err := s.getUint("layout version", keyVersion); err != nil || v != layoutVersion {
		t.Errorf("layout version = %d, %v, want %d", v, err, layoutVersion)
	}
	checkConsistent(t, s)
}

func TestOpenRefusesUnknownLayout(t *testing.T) {
	dir := t.TempDir()
	db, err := pebble.Open(dir, &pebble.Options{Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(db.Set(keyVersion, encodeUint(layoutVersion+1), pebble.Sync), db.Close()); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(dir, inbox.Options{}); err == nil {
		t.Errorf("Open of layout %d succeeded", layoutVersion+1)
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	}
}

func TestHistoryBadInput(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	for _, m := range []inbox.Message{
		{UID: "u", Kind: inbox.KindDirect, Peer: "a\x00b"},
		{UID: "u", Kind: inbox.KindSent, Peer: "\x00"},
	} {
		if _, err := s.Append(ctx, []inbox.Message{m}); !errors.Is(err, errBadPeer) {
			t.Errorf("Append of a %v with peer %q = %v, want errBadPeer", m.Kind, m.Peer, err)
		}
	}
	// Peers outside threads are opaque.
	if _, err := s.Append(ctx, []inbox.Message{{UID: "u", Kind: inbox.KindReceipt, Peer: "a\x00b"}}); err != nil {
		t.Errorf("Append of a receipt with a 0x00 in its peer: %v", err)
	}
	if msgs, err := s.Thread(ctx, "u", "a\x00b", 0, 10); err != nil || len(msgs) != 0 {
		t.Errorf("Thread of a name with 0x00 = %v, %v, want nothing", msgs, err)
	}
	for name, call := range map[string]func(uid string) error{
		"Thread":   func(uid string) error { _, err := s.Thread(ctx, uid, "t", 0, 1); return err },
		"Threads":  func(uid string) error { _, err := s.Threads(ctx, uid, 0, 0); return err },
		"MarkRead": func(uid string) error { return s.MarkRead(ctx, uid, "t", 1) },
		"ReadMark": func(uid string) error { _, err := s.ReadMark(ctx, uid, "t"); return err },
		"Unread":   func(uid string) error { _, err := s.Unread(ctx, uid); return err },
		"Delete":   func(uid string) error { _, err := s.Delete(ctx, uid, 1); return err },
	} {
		for _, uid := range []string{"", "a\x00b"} {
			if err := call(uid); !errors.Is(err, errBadUID) {
				t.Errorf("%s(%q) = %v, want errBadUID", name, uid, err)
			}
		}
	}
}

func TestCorruptIndex(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	if _, err := s.Append(ctx, []inbox.Message{{UID: "u", Kind: inbox.KindDirect, Peer: "p"}}); err != nil {
		t.Fatal(err)
	}
	// An index entry whose message is missing, and one with a bad value.
	if err := s.db.Set(appendIndexKey(nil, "u", "p", 7), appendIndexValue(nil, inbox.KindDirect, 0), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Thread(ctx, "u", "p", 0, 10); !errors.Is(err, errCorrupt) {
		t.Errorf("Thread over a dangling index entry = %v, want errCorrupt", err)
	}
	if _, err := s.Threads(ctx, "u", 0, 0); !errors.Is(err, errCorrupt) {
		t.Errorf("Threads over a dangling index entry = %v, want errCorrupt", err)
	}
	if err := s.db.Set(appendIndexKey(nil, "u", "p", 7), []byte{1}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Unread(ctx, "u"); !errors.Is(err, errCorrupt) {
		t.Errorf("Unread over a bad index value = %v, want errCorrupt", err)
	}
}

// TestIndexKeysSort checks the property the index relies on: the keys of
// one thread sort together, by Seq, between its prefix and its end, for
// uids and threads that are prefixes of each other.
func TestIndexKeysSort(t *testing.T) {
	names := []string{"a", "a.", "a0", "ab", "b"}
	var keys [][]byte
	for _, uid := range names {
		for _, th := range names {
			for _, seq := range []uint64{1, 255, 256, 1 << 40} {
				keys = append(keys, appendIndexKey(nil, uid, th, seq))
			}
		}
	}
	slices.SortFunc(keys, bytes.Compare)
	for _, uid := range names {
		for _, th := range names {
			lo, hi := appendIndexThread(nil, uid, th), appendIndexThreadEnd(nil, uid, th)
			var got []uint64
			for _, k := range keys {
				if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
					if !bytes.HasPrefix(k, lo) || len(k) != len(lo)+8 {
						t.Fatalf("key %q of another thread sorts inside %s/%s", k, uid, th)
					}
					got = append(got, binary.BigEndian.Uint64(k[len(lo):]))
				}
			}
			if !slices.Equal(got, []uint64{1, 255, 256, 1 << 40}) {
				t.Errorf("thread %s/%s spans Seqs %v", uid, th, got)
			}
		}
	}
}
