package redisstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// commandCalls reads INFO commandstats: calls per command, counting the
// commands scripts run.
func commandCalls(t *testing.T, srv *redistest.Server) map[string]int {
	t.Helper()
	info, err := redistest.Do(srv.Addr, 5*time.Second, "INFO", "commandstats")
	if err != nil {
		t.Fatal(err)
	}
	calls := map[string]int{}
	for line := range strings.Lines(info) {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || name == "info" {
			continue
		}
		n, _ := strconv.Atoi(strings.TrimPrefix(strings.Split(rest, ",")[0], "calls="))
		calls[name] = n
	}
	return calls
}

// commandsOf is what f costs Redis: the commands it sends and those their
// scripts run, by name.
func commandsOf(t *testing.T, srv *redistest.Server, f func()) (int, map[string]int) {
	t.Helper()
	before := commandCalls(t, srv)
	f()
	after := commandCalls(t, srv)
	total := 0
	diff := map[string]int{}
	for name, n := range after {
		if d := n - before[name]; d > 0 {
			diff[name] = d
			total += d
		}
	}
	return total, diff
}

// A direct message costs Redis one script that runs a fixed, small number
// of commands; a resend fewer. Every direct message pays them, so a
// regression here is a regression in what one Redis carries (see
// docs/performance.md, "Redis cost per message").
func TestSubmitCommands(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{}) // its own: the counts are the server's
	c := srv.Client(t)
	s := openStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 100})
	locked := openLockStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 100})
	ctx := context.Background()
	dm := func(cid string) inbox.Request {
		return inbox.Request{
			Msgs: []inbox.Message{
				{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: "hi"},
				{UID: "alice", Kind: inbox.KindSent, Peer: "bob", Content: "hi", CID: cid},
			},
			Key: "alice " + cid, Sum: sha256.Sum256([]byte("bob\x00hi")), PushAfter: time.Minute,
			RefuseIfBlocked: "alice",
		}
	}
	// The first ones load the scripts and start each inbox's counts.
	for i := range 3 {
		for _, st := range []*Store{s, locked} {
			if _, err := st.Submit(ctx, dm("warm-"+strconv.Itoa(i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	// A resend on the Cluster protocol loads the unlock script.
	if r, err := locked.Submit(ctx, dm("warm-0")); err != nil || !r.Duplicate {
		t.Fatalf("resend = duplicate %v, %v; want a duplicate", r.Duplicate, err)
	}
	tests := []struct {
		name    string
		store   *Store
		cid     string
		dup     bool
		blocked bool
		max     int
	}{
		// EVALSHA; per inbox HMGET and HSET of h (which says bob blocks
		// nobody and no lock is held, and holds th's pending entries),
		// ZADD of the log and of the thread index; HSETNX of the request
		// record; ZADD of the push schedule.
		{"new message", s, "c-1", false, false, 11},
		// EVALSHA, two HMGETs, HSETNX, HGET.
		{"resend", s, "c-1", true, false, 5},
		// A Redis Cluster (doc.go): per inbox a lock script (EVALSHA, GET,
		// SET, HMGET, HSET of h's lock mark; SISMEMBER and HGET of the
		// request record in the first) and an append script (EVALSHA,
		// GET, HMGET, the two ZADDs of the entry, HSET and DEL; HSET of
		// the record in the first); ZADD of the sweep index and of the
		// push schedule, in the global slot.
		{"new message, Cluster protocol", locked, "c-1", false, false, 29},
		// EVALSHA, the two HMGETs (h says bob blocks someone), SISMEMBER:
		// refused before any write.
		{"blocked sender", s, "c-2", false, true, 4},
		// The first lock script (EVALSHA, SISMEMBER) refuses; the second
		// takes its lock (EVALSHA, GET, SET, HMGET, HSET), which the unlock
		// script (EVALSHA, GET, DEL, HSET) releases.
		{"blocked sender, Cluster protocol", locked, "c-2", false, true, 11},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.blocked {
				if _, err := tt.store.Block(ctx, "bob", "alice", 0); err != nil {
					t.Fatal(err)
				}
			}
			var r inbox.Receipt
			var err error
			n, by := commandsOf(t, srv, func() { r, err = tt.store.Submit(ctx, dm(tt.cid)) })
			switch {
			case tt.blocked && !errors.Is(err, inbox.ErrBlocked):
				t.Fatalf("Submit = %v, want ErrBlocked", err)
			case !tt.blocked && (err != nil || r.Duplicate != tt.dup):
				t.Fatalf("Submit = duplicate %v, %v; want %v", r.Duplicate, err, tt.dup)
			}
			t.Logf("%d commands: %v", n, by)
			if n > tt.max {
				t.Errorf("%d commands %v, want at most %d", n, by, tt.max)
			}
		})
	}
}

// WriteAcks moves cursors forward only, reads the cursors layout 1 kept in
// the inbox too, and takes acknowledged messages off the push schedule.
func TestWriteAcks(t *testing.T) {
	c := sharedServer(t).Client(t)
	prefix := newPrefix()
	s := openStore(t, c, prefix, inbox.Options{})
	ctx := context.Background()
	cursor := func(uid, device string) uint64 {
		t.Helper()
		seq, ok, err := s.Cursor(ctx, uid, device)
		if err != nil || !ok {
			t.Fatalf("Cursor(%s, %s) = %d, %v, %v", uid, device, seq, ok, err)
		}
		return seq
	}
	if err := s.SetCursor(ctx, "alice", "phone", 5); err != nil {
		t.Fatal(err)
	}
	if err := s.WriteAcks(ctx, []inbox.CursorPos{{UID: "alice", Device: "phone", Seq: 3}, {UID: "bob", Device: "tablet", Seq: 7}}, nil); err != nil {
		t.Fatal(err)
	}
	if got := cursor("alice", "phone"); got != 5 {
		t.Errorf("alice's cursor went from 5 to %d, want it kept", got)
	}
	if got := cursor("bob", "tablet"); got != 7 {
		t.Errorf("bob's cursor %d, want 7", got)
	}
	if _, ok, err := s.Cursor(ctx, "alice", "laptop"); ok || err != nil {
		t.Errorf("a device never written has a cursor (%v, %v)", ok, err)
	}

	// A cursor layout 1 wrote in the inbox's hash counts until passed.
	if err := c.HSet(ctx, s.k.base("carol")+sufCursors, "phone", "9").Err(); err != nil {
		t.Fatal(err)
	}
	if got := cursor("carol", "phone"); got != 9 {
		t.Errorf("carol's layout 1 cursor read as %d, want 9", got)
	}
	if err := s.SetCursor(ctx, "carol", "phone", 4); err != nil {
		t.Fatal(err)
	}
	if got := cursor("carol", "phone"); got != 9 {
		t.Errorf("carol's cursor %d after writing 4 below the layout 1 one, want 9", got)
	}
	if err := s.SetCursor(ctx, "carol", "phone", 12); err != nil {
		t.Fatal(err)
	}
	if got := cursor("carol", "phone"); got != 12 {
		t.Errorf("carol's cursor %d, want 12", got)
	}

	// Push checks of acknowledged messages leave the schedule; others stay.
	const after = time.Minute
	var seqs []uint64
	for i := range 3 {
		r, err := s.Submit(ctx, inbox.Request{Msgs: []inbox.Message{{UID: "dave", Kind: inbox.KindDirect, Peer: "erin",
			Content: strconv.Itoa(i)}}, PushAfter: after})
		if err != nil {
			t.Fatal(err)
		}
		seqs = append(seqs, r.Msgs[0].Seq)
	}
	acked := []inbox.PushRange{{UID: "dave", From: seqs[0], To: seqs[1]}, {UID: "nobody", From: 1, To: 3}}
	if err := s.WriteAcks(ctx, nil, acked); err != nil {
		t.Fatal(err)
	}
	due, err := s.ClaimDuePushes(ctx, time.Now().Add(after+time.Minute), time.Minute, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(due) != 1 || due[0].UID != "dave" || due[0].Seq != seqs[2] {
		t.Errorf("due pushes %+v, want only dave's seq %d", due, seqs[2])
	}

	for _, bad := range []struct {
		name    string
		cursors []inbox.CursorPos
		acked   []inbox.PushRange
	}{
		{"seq above 2^53", []inbox.CursorPos{{UID: "alice", Device: "phone", Seq: 1<<53 + 1}}, nil},
		{"empty uid", []inbox.CursorPos{{UID: "", Device: "phone", Seq: 1}}, nil},
		{"range too wide", nil, []inbox.PushRange{{UID: "dave", From: 1, To: maxCancelRange + 1}}},
		{"range of no uid", nil, []inbox.PushRange{{UID: "", From: 1, To: 2}}},
	} {
		if err := s.WriteAcks(ctx, bad.cursors, bad.acked); err == nil {
			t.Errorf("%s: WriteAcks succeeded", bad.name)
		}
	}
}

// An inbox written with layout 1 (every Seq of a thread in t:, a time
// index, no count in h, request records with their ages in ddt) reads,
// grows, deletes and expires correctly with the current scripts.
func TestLayout1Inbox(t *testing.T) {
	c := sharedServer(t).Client(t)
	s := openStore(t, c, newPrefix(), inbox.Options{})
	ctx := context.Background()
	b := s.k.base("alice")
	t0 := time.Now().Add(-time.Hour).UnixMilli()
	msgs := []inbox.Message{
		{Seq: 1, Kind: inbox.KindDirect, Peer: "bob", Content: "one"},
		{Seq: 2, Kind: inbox.KindDirect, Peer: "bob", Content: "two"},
		{Seq: 3, Kind: inbox.KindDirect, Peer: "bob", Content: "three"},
		{Seq: 4, Kind: inbox.KindSent, Peer: "bob", Content: "four", CID: "c-4"},
	}
	pipe := c.TxPipeline()
	for i := range msgs {
		m := &msgs[i]
		m.UID, m.Time, m.ID = "alice", t0+int64(i)*60_000, strconv.Itoa(1000+i)
		seq := strconv.FormatUint(m.Seq, 10)
		pipe.ZAdd(ctx, b+sufLog, redis.Z{Score: float64(m.Seq), Member: string(appendMember(nil, m.Seq, uint64(1000+i), m))})
		pipe.ZAdd(ctx, b+sufTimes, redis.Z{Score: float64(m.Time), Member: seq})
		pipe.ZAdd(ctx, b+sufThread+"bob", redis.Z{Score: float64(m.Seq), Member: seq})
		if m.Incoming() {
			pipe.ZAdd(ctx, b+sufIncome+"bob", redis.Z{Score: float64(m.Seq), Member: seq + ":"})
		}
	}
	pipe.ZAdd(ctx, b+sufThreads, redis.Z{Score: 4, Member: "bob"})
	pipe.HSet(ctx, b+sufMeta, "s", "4", "i", "1003")
	pipe.ZAdd(ctx, s.k.oldest(), redis.Z{Score: float64(t0), Member: "alice"})
	sum := sha256.Sum256([]byte("alice\x00five"))
	pipe.HSet(ctx, b+sufRequests, "bob c-5", fmt.Sprintf("%x %d 1003 3", sum, time.Now().UnixMilli()))
	pipe.ZAdd(ctx, b+"ddt", redis.Z{Score: float64(time.Now().UnixMilli()), Member: "bob c-5"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}

	thread := func(want ...string) {
		t.Helper()
		got, err := s.Thread(ctx, "alice", "bob", 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		var texts []string
		for _, m := range got {
			texts = append(texts, m.Content)
		}
		if !slices.Equal(texts, want) {
			t.Errorf("thread %q, want %q", texts, want)
		}
	}
	thread("four", "three", "two", "one")
	if u, err := s.Unread(ctx, "alice"); err != nil || u.Total != 3 {
		t.Errorf("unread %+v, %v, want 3", u, err)
	}

	// A resend of the request layout 1 recorded is found.
	resend := inbox.Request{Msgs: []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: "five"}},
		Key: "bob c-5", Sum: sum}
	if r, err := s.Submit(ctx, resend); err != nil || !r.Duplicate || r.Msgs[0].Seq != 3 {
		t.Fatalf("resend of a layout 1 request = %+v, %v; want the duplicate of seq 3", r, err)
	}
	// A new message: Seq 5, the count starts from the log.
	r, err := s.Submit(ctx, inbox.Request{Msgs: []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: "six"}}})
	if err != nil || r.Msgs[0].Seq != 5 {
		t.Fatalf("Submit = %+v, %v; want seq 5", r, err)
	}
	if n, err := c.HGet(ctx, b+sufMeta, "n").Result(); err != nil || n != "5" {
		t.Errorf("held count %q, %v, want 5", n, err)
	}
	thread("six", "four", "three", "two", "one")
	if ok, err := s.Delete(ctx, "alice", 5); err != nil || !ok {
		t.Fatalf("Delete = %v, %v", ok, err)
	}
	if sums, err := s.Threads(ctx, "alice", 0, 0); err != nil || len(sums) != 1 || sums[0].Last.Seq != 4 {
		t.Errorf("threads after the delete %+v, %v; want bob's, newest seq 4", sums, err)
	}

	// Expiry reads the times from the messages, and clears the time index.
	dropped, err := s.ExpireBefore(ctx, time.UnixMilli(msgs[2].Time))
	if err != nil || dropped != 2 {
		t.Fatalf("ExpireBefore = %d, %v; want the two oldest dropped", dropped, err)
	}
	thread("four", "three")
	if n, err := c.HGet(ctx, b+sufMeta, "n").Result(); err != nil || n != "2" {
		t.Errorf("held count %q, %v, want 2", n, err)
	}
	if left, err := c.ZRange(ctx, b+sufTimes, 0, -1).Result(); err != nil || !slices.Equal(left, []string{"3", "4"}) {
		t.Errorf("time index %q, %v, want the entries of 3 and 4 only", left, err)
	}
	if _, err := s.ExpireBefore(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	left, err := c.Keys(ctx, b+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(left)
	for i := range left {
		left[i] = strings.TrimPrefix(left[i], b)
	}
	// The log and its indexes are gone; h (Seqs never go back) and the
	// request records (until they expire) stay.
	if want := []string{"dd", "ddt", "h"}; !slices.Equal(left, want) {
		t.Errorf("keys left %q, want %q", left, want)
	}
}
