package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// TestRedisRestart kills Redis (AOF, appendfsync always) under an open
// store: every method fails with an error, and once Redis is back the
// same store works again and finds everything Append acknowledged.
func TestRedisRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{AOF: true})
	c := srv.Client(t)
	s := openStore(t, c, newPrefix(), inbox.Options{NodeID: 7, MaxPerInbox: 100})
	ctx := context.Background()
	var lastID string
	for i := range 5 {
		got, err := s.Append(ctx, []inbox.Message{
			{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: strconv.Itoa(i)},
			{UID: "bob", Kind: inbox.KindSent, Peer: "alice", Content: strconv.Itoa(i)},
		})
		if err != nil {
			t.Fatalf("Append: %v", err)
		}
		lastID = got[0].ID
	}
	if err := s.SetCursor(ctx, "alice", "phone", 3); err != nil {
		t.Fatalf("SetCursor: %v", err)
	}
	if err := s.MarkRead(ctx, "alice", "bob", 2); err != nil {
		t.Fatalf("MarkRead: %v", err)
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	down, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for _, c := range allCalls(s) {
		if err := c.call(down); err == nil {
			t.Errorf("%s with Redis down returned no error", c.name)
		}
	}

	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	// The client reconnects by itself; the scripts are gone from the new
	// process and come back through the EVAL fallback.
	var got []inbox.Message
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		got, err = s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob", Content: "after"}})
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Append after the restart still fails: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got[0].Seq != 6 {
		t.Errorf("first Seq after the restart = %d, want 6", got[0].Seq)
	}
	if CompareIDs(got[0].ID, lastID) <= 0 {
		t.Errorf("id after the restart %s not above %s", got[0].ID, lastID)
	}
	msgs, err := s.Read(ctx, "alice", 0, 100)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	if len(msgs) != 6 {
		t.Fatalf("alice holds %d messages after the restart, want 6", len(msgs))
	}
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Errorf("message %d has Seq %d", i, m.Seq)
		}
	}
	if seq, ok, err := s.Cursor(ctx, "alice", "phone"); err != nil || !ok || seq != 3 {
		t.Errorf("Cursor after the restart = %d, %v, %v, want 3, true", seq, ok, err)
	}
	u, err := s.Unread(ctx, "alice")
	if err != nil || u.Total != 4 {
		t.Errorf("Unread after the restart = %+v, %v, want 4 unread (mark at 2 of 6)", u, err)
	}
}

// CompareIDs is inbox.CompareIDs, short for the tests.
func CompareIDs(a, b string) int { return inbox.CompareIDs(a, b) }

// TestStaleLock leaves an append lock behind as a crashed node of the
// lock protocol would (the lock, and the mark in h that tells the submit
// script to look at it): an Append waits for it to expire, or gives up at
// its deadline.
func TestStaleLock(t *testing.T) {
	c := sharedServer(t).Client(t)
	s := openStore(t, c, newPrefix(), inbox.Options{})
	ctx := context.Background()
	const ttl = 400 * time.Millisecond
	if err := c.Set(ctx, s.k.base("alice")+sufLock, "crashed-node", ttl).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.HSet(ctx, s.k.base("alice")+sufMeta, "L", "1").Err(); err != nil {
		t.Fatal(err)
	}
	msg := []inbox.Message{{UID: "bob", Kind: inbox.KindSent, Peer: "alice"}, {UID: "alice", Kind: inbox.KindDirect, Peer: "bob"}}

	start := time.Now()
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.Append(short, msg); err == nil {
		t.Fatal("Append under a held lock returned before its deadline without error")
	}
	if d := time.Since(start); d > ttl/2 {
		t.Errorf("Append with a 50ms deadline took %v", d)
	}
	got, err := s.Append(ctx, msg)
	if err != nil {
		t.Fatalf("Append after the lock expires: %v", err)
	}
	if d := time.Since(start); d < ttl/2 {
		t.Errorf("Append returned after %v, before the lock could expire", d)
	}
	// The given-up Append left nothing behind, in either inbox.
	for _, m := range got {
		if m.Seq != 1 {
			t.Errorf("%s got Seq %d, want 1", m.UID, m.Seq)
		}
	}
	// The Append that found the lock expired cleared the mark.
	if mark, err := c.HGet(ctx, s.k.base("alice")+sufMeta, "L").Result(); err != nil || mark != "0" {
		t.Errorf("lock mark after the expired lock = %q, %v; want 0", mark, err)
	}
}

// TestAppendReplay runs the append script twice under one token, as a
// client retrying after a lost reply does: the second call returns the
// first one's result and appends nothing.
func TestAppendReplay(t *testing.T) {
	c := sharedServer(t).Client(t)
	s := openLockStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 1})
	ctx := context.Background()
	notice := inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: 1}
	if _, err := s.Append(ctx, []inbox.Message{notice}); err != nil {
		t.Fatal(err)
	}
	tg := []target{{uid: "alice", base: s.k.base("alice"), idx: []int{0}}}
	r := s.newRequest(inbox.Request{Msgs: []inbox.Message{notice}}, tg)
	r.token = "replay"
	token := r.token
	floor, _, _, err := s.lockAll(ctx, r)
	if err != nil {
		t.Fatal(err)
	}
	id := s.nextID(time.Now(), floor)
	body := string(appendBody(nil, id, &notice))
	b := tg[0].base
	keys := []string{b + sufMeta, b + sufLock, b + sufLog, b + sufThreads, b + sufRequests}
	args := []any{token, strconv.FormatUint(id, 10), "1", 1, 1, "", "", 0, 0, 0, body, inbox.NoticeThread, ":1", ""}
	var res [2][]int64
	for i := range res {
		if res[i], err = scriptAppend.Run(ctx, c, keys, args...).Int64Slice(); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if res[0][0] != 2 || res[0][1] != 1 || res[1][0] != res[0][0] || res[1][1] != res[0][1] {
		t.Errorf("results %v, %v, want [2 1] twice", res[0], res[1])
	}
	args[0] = "another"
	if err := scriptAppend.Run(ctx, c, keys, args...).Err(); !redis.HasErrorPrefix(err, "INBOXLOCK") {
		t.Errorf("call without the lock = %v, want INBOXLOCK", err)
	}
	if _, last, err := s.Bounds(ctx, "alice"); err != nil || last != 2 {
		t.Errorf("Bounds last = %d, %v, want 2", last, err)
	}
}

// TestSweepRace sweeps with a future cut while another node appends:
// however they interleave, every inbox left holding messages keeps its
// sweep index entry, so a last sweep empties them all.
func TestSweepRace(t *testing.T) {
	c := sharedServer(t).Client(t)
	prefix := newPrefix()
	appender := openStore(t, c, prefix, inbox.Options{NodeID: 1})
	sweeper := openStore(t, c, prefix, inbox.Options{NodeID: 2})
	ctx := context.Background()
	const inboxes = 8
	uid := func(i int) string { return "u" + strconv.Itoa(i%inboxes) }

	stop := time.Now().Add(400 * time.Millisecond)
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	for w := range 2 {
		wg.Go(func() {
			for i := w; time.Now().Before(stop); i += 2 {
				msgs := []inbox.Message{{UID: uid(i), Kind: inbox.KindDirect, Peer: uid(i + 1)}}
				if i%3 == 0 {
					msgs = append(msgs, inbox.Message{UID: uid(i + 1), Kind: inbox.KindSent, Peer: uid(i)})
				}
				if _, err := appender.Append(ctx, msgs); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	swept := 0
	wg.Go(func() {
		for time.Now().Before(stop) {
			n, err := sweeper.ExpireBefore(ctx, time.Now().Add(time.Hour))
			if err != nil {
				errs <- err
				return
			}
			swept += n
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if swept == 0 {
		t.Error("the sweeps dropped nothing: no race was tried")
	}
	for i := range inboxes {
		first, _, err := appender.Bounds(ctx, uid(i))
		if err != nil {
			t.Fatal(err)
		}
		if first == 0 {
			continue
		}
		if err := c.ZScore(ctx, appender.k.oldest(), uid(i)).Err(); err != nil {
			t.Errorf("inbox %s holds messages but has no sweep index entry: %v", uid(i), err)
		}
	}
	if _, err := sweeper.ExpireBefore(ctx, time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	for i := range inboxes {
		if first, _, err := appender.Bounds(ctx, uid(i)); err != nil || first != 0 {
			t.Errorf("after the last sweep %s holds Seq %d (%v)", uid(i), first, err)
		}
	}
	if n, err := c.ZCard(ctx, appender.k.oldest()).Result(); err != nil || n != 0 {
		t.Errorf("sweep index holds %d entries (%v), want 0", n, err)
	}
}

// namedCall is one Store method call, for tests that try them all.
type namedCall struct {
	name string
	call func(ctx context.Context) error
}

func allCalls(s *Store) []namedCall {
	return []namedCall{
		{"Append", func(ctx context.Context) error {
			_, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindNotice}})
			return err
		}},
		{"Read", func(ctx context.Context) error { _, err := s.Read(ctx, "alice", 0, 10); return err }},
		{"Bounds", func(ctx context.Context) error { _, _, err := s.Bounds(ctx, "alice"); return err }},
		{"Cursor", func(ctx context.Context) error { _, _, err := s.Cursor(ctx, "alice", "d"); return err }},
		{"SetCursor", func(ctx context.Context) error { return s.SetCursor(ctx, "alice", "d", 1) }},
		{"ExpireBefore", func(ctx context.Context) error { _, err := s.ExpireBefore(ctx, time.Now()); return err }},
		{"Thread", func(ctx context.Context) error { _, err := s.Thread(ctx, "alice", "bob", 0, 10); return err }},
		{"Threads", func(ctx context.Context) error { _, err := s.Threads(ctx, "alice", 0, 0); return err }},
		{"MarkRead", func(ctx context.Context) error { return s.MarkRead(ctx, "alice", "bob", 2) }},
		{"ReadMark", func(ctx context.Context) error { _, err := s.ReadMark(ctx, "alice", "bob"); return err }},
		{"Unread", func(ctx context.Context) error { _, err := s.Unread(ctx, "alice"); return err }},
		{"Delete", func(ctx context.Context) error { _, err := s.Delete(ctx, "alice", 1); return err }},
	}
}

func TestClosedErrClosed(t *testing.T) {
	s := openStore(t, sharedServer(t).Client(t), newPrefix(), inbox.Options{})
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); !errors.Is(err, inbox.ErrClosed) {
		t.Errorf("second Close = %v, want inbox.ErrClosed", err)
	}
	for _, c := range allCalls(s) {
		if err := c.call(context.Background()); !errors.Is(err, inbox.ErrClosed) {
			t.Errorf("%s after Close = %v, want inbox.ErrClosed", c.name, err)
		}
	}
}

func TestCanceledContext(t *testing.T) {
	s := openStore(t, sharedServer(t).Client(t), newPrefix(), inbox.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, c := range allCalls(s) {
		if err := c.call(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%s with a canceled context = %v, want context.Canceled", c.name, err)
		}
	}
}

func TestBadUID(t *testing.T) {
	s := openStore(t, sharedServer(t).Client(t), newPrefix(), inbox.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, []inbox.Message{{UID: "a", Kind: inbox.KindNotice}, {Kind: inbox.KindNotice}}); !errors.Is(err, errBadUID) {
		t.Errorf("Append with an empty uid = %v, want errBadUID", err)
	}
	if _, err := s.Read(ctx, "", 0, 1); !errors.Is(err, errBadUID) {
		t.Errorf("Read of an empty uid = %v, want errBadUID", err)
	}
	if first, last, err := s.Bounds(ctx, "a"); err != nil || first != 0 || last != 0 {
		t.Errorf("Bounds(a) after a refused Append = %d, %d, %v, want nothing", first, last, err)
	}
}

func TestOpenRejects(t *testing.T) {
	c := sharedServer(t).Client(t)
	ctx := context.Background()
	mismatched := newPrefix()
	if err := c.Set(ctx, keys{prefix: mismatched}.layout(), "99", 0).Err(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		opts Options
	}{
		{"no client", Options{Prefix: "p:"}},
		{"open brace in prefix", Options{Client: c, Prefix: "p{"}},
		{"close brace in prefix", Options{Client: c, Prefix: "}p"}},
		{"node id below range", Options{Client: c, Inbox: inbox.Options{NodeID: -1}}},
		{"node id above range", Options{Client: c, Inbox: inbox.Options{NodeID: 1024}}},
		{"negative MaxPerInbox", Options{Client: c, Inbox: inbox.Options{MaxPerInbox: -1}}},
		{"other layout version", Options{Client: c, Prefix: mismatched}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if s, err := Open(ctx, tt.opts); err == nil {
				t.Errorf("Open succeeded: %+v", s)
			}
		})
	}
}

func TestOpenUnreachable(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := srv.Client(t)
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := Open(ctx, Options{Client: c}); err == nil {
		t.Error("Open with Redis down succeeded")
	} else if testing.Verbose() {
		fmt.Println("Open with Redis down:", err)
	}
}

// stealHook lets a test act between an Append's two round trips.
type stealHook struct {
	pipelines atomic.Int64
	before    func() // run before the second pipeline
}

func (h *stealHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *stealHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (h *stealHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		if h.pipelines.Add(1) == 2 {
			h.before()
		}
		return next(ctx, cmds)
	}
}

// TestAppendLockLost takes an inbox's lock away between an Append's round
// trips (the Cluster protocol), as the lock's expiry under a stalled node
// would: the Append fails and says which inbox got its entry, and the new
// holder keeps its lock.
func TestAppendLockLost(t *testing.T) {
	srv := sharedServer(t)
	other := srv.Client(t)
	c := srv.Client(t)
	prefix := newPrefix()
	s := openLockStore(t, c, prefix, inbox.Options{})
	ctx := context.Background()
	dm := []inbox.Message{
		{UID: "alice", Kind: inbox.KindDirect, Peer: "bob"},
		{UID: "bob", Kind: inbox.KindSent, Peer: "alice"},
	}
	// Load the scripts first, so the Append below is two pipelines.
	if _, err := s.Append(ctx, dm); err != nil {
		t.Fatal(err)
	}
	lock := s.k.base("alice") + sufLock
	hook := &stealHook{before: func() {
		if err := other.Set(ctx, lock, "thief", time.Minute).Err(); err != nil {
			t.Error(err)
		}
	}}
	c.AddHook(hook)
	short, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := s.Append(short, dm)
	t.Logf("Append: %v", err)
	if !strings.Contains(fmt.Sprint(err), "INBOXLOCK") {
		t.Errorf("Append = %v, want an INBOXLOCK error", err)
	}
	if !strings.Contains(fmt.Sprint(err), `stored in ["bob"]`) {
		t.Errorf("Append error %q does not name bob as written", err)
	}
	for uid, want := range map[string]uint64{"alice": 1, "bob": 2} {
		if _, last, err := s.Bounds(ctx, uid); err != nil || last != want {
			t.Errorf("Bounds(%s) last = %d, %v, want %d", uid, last, err, want)
		}
	}
	if got, err := other.Get(ctx, lock).Result(); err != nil || got != "thief" {
		t.Errorf("lock after the failed Append = %q, %v, want the thief's", got, err)
	}
}

// TestSubmitOutcome: a Submit that fails says whether Redis may hold the
// request. Redis down: certainly not (ErrNotStored). Redis paused past the
// deadline: unknown, and indeed the script runs once Redis resumes; the
// resend then finds the request instead of storing it again.
func TestSubmitOutcome(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, ContextTimeoutEnabled: true, MaxRetries: -1})
	defer c.Close()
	s := openStore(t, c, newPrefix(), inbox.Options{})
	ctx := context.Background()
	req := func(cid string) inbox.Request {
		return inbox.Request{Msgs: []inbox.Message{
			{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: cid},
			{UID: "alice", Kind: inbox.KindSent, Peer: "bob", Content: cid, CID: cid},
		}, Key: "alice " + cid}
	}
	if _, err := s.Submit(ctx, req("warm")); err != nil {
		t.Fatal(err)
	}

	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := s.Submit(short, req("paused"))
	cancel()
	if err == nil || errors.Is(err, inbox.ErrNotStored) {
		t.Errorf("Submit to a paused Redis = %v, want an error of unknown outcome", err)
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	again, err := s.Submit(ctx, req("paused"))
	if err != nil {
		t.Fatal(err)
	}
	if !again.Duplicate {
		t.Error("the request sent before the pause was not stored once Redis resumed (the test shows nothing)")
	}

	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	short, cancel = context.WithTimeout(ctx, 300*time.Millisecond)
	_, err = s.Submit(short, req("down"))
	cancel()
	if !errors.Is(err, inbox.ErrNotStored) {
		t.Errorf("Submit with Redis down = %v, want ErrNotStored", err)
	}
}
