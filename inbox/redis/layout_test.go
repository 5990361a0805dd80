package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

func TestBase(t *testing.T) {
	tests := []struct {
		name, uid, want string
	}{
		{"plain", "10021", "p:im:{10021}:"},
		{"braces", "a{b}c", "p:im:{a%7Bb%7Dc}:"},
		{"leading close brace", "}x", "p:im:{%7Dx}:"},
		{"percent", "%7D", "p:im:{%257D}:"},
		{"broadcast", inbox.BroadcastInbox, "p:im:{$broadcast}:"},
		{"bytes", "a:b\x00c", "p:im:{a:b\x00c}:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := (keys{prefix: "p:"}).base(tt.uid); got != tt.want {
				t.Errorf("base(%q) = %q, want %q", tt.uid, got, tt.want)
			}
		})
	}
}

// TestKeyLayout checks the keys a few operations leave, as doc.go lists
// them: no lock is left behind, and nothing is written outside the prefix.
func TestKeyLayout(t *testing.T) {
	c := sharedServer(t).Client(t)
	prefix := newPrefix()
	s := openStore(t, c, prefix, inbox.Options{})
	ctx := context.Background()
	if _, err := s.Append(ctx, []inbox.Message{
		{UID: "alice", Kind: inbox.KindDirect, Peer: "bob"},
		{UID: "bob", Kind: inbox.KindSent, Peer: "alice"},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, []inbox.Message{{UID: "alice", Kind: inbox.KindNotice, MsgType: 7}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetCursor(ctx, "alice", "phone", 1); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkRead(ctx, "alice", "bob", 1); err != nil {
		t.Fatal(err)
	}
	got, err := c.Keys(ctx, prefix+"*").Result()
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		got[i] = strings.TrimPrefix(got[i], prefix)
	}
	slices.Sort(got)
	// alice's incoming messages are indexed in u: only, bob's copy in t:.
	// th is written behind (h's P): not yet.
	want := []string{
		"im:{alice}:h", "im:{alice}:m", "im:{alice}:r",
		"im:{alice}:u:$notices", "im:{alice}:u:bob",
		"im:{bob}:h", "im:{bob}:m", "im:{bob}:t:alice",
		"{$global}:cur", "{$global}:layout", "{$global}:oldest",
	}
	if !slices.Equal(got, want) {
		t.Errorf("keys\n%q\nwant\n%q", got, want)
	}
	// Reading alice's threads writes her pending entries to th.
	if _, err := s.Threads(ctx, "alice", 0, 0); err != nil {
		t.Fatal(err)
	}
	th, err := c.ZRangeWithScores(ctx, prefix+"im:{alice}:th", 0, -1).Result()
	if err != nil || len(th) != 2 || th[0].Member != "bob" || th[0].Score != 1 || th[1].Member != inbox.NoticeThread || th[1].Score != 2 {
		t.Errorf("alice's th after Threads = %v, %v; want bob at 1, notices at 2", th, err)
	}
	if pend, err := c.HGet(ctx, prefix+"im:{alice}:h", "P").Result(); err != redis.Nil {
		t.Errorf("alice's pending th entries after Threads = %q, %v; want none", pend, err)
	}
	unread, err := c.ZRange(ctx, prefix+"im:{alice}:u:$notices", 0, -1).Result()
	if err != nil || !slices.Equal(unread, []string{"2:7"}) {
		t.Errorf("unread index of alice's notices = %q, %v, want [2:7] (Seq:MsgType)", unread, err)
	}
}

// rtCounter is a go-redis hook counting round trips: a command or a
// pipeline each cost one.
type rtCounter struct{ n atomic.Int64 }

func (c *rtCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *rtCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *rtCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmds)
	}
}

// countedClient returns a client of the shared server whose round trips
// are counted.
func countedClient(tb testing.TB) (*redis.Client, *rtCounter) {
	tb.Helper()
	c := sharedServer(tb).Client(tb)
	rt := &rtCounter{}
	c.AddHook(rt)
	return c, rt
}

// TestRoundTrips checks the round trips doc.go promises, once the scripts
// are cached in Redis.
func TestRoundTrips(t *testing.T) {
	c, rt := countedClient(t)
	s := openStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 2})
	locked := openLockStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 2})
	ctx := context.Background()
	dm := []inbox.Message{{UID: "alice", Kind: inbox.KindDirect, Peer: "bob"}, {UID: "bob", Kind: inbox.KindSent, Peer: "alice"}}
	keys := 0
	newKey := func() string { keys++; return strconv.Itoa(keys) }
	for _, st := range []*Store{s, locked} {
		if _, err := st.Block(ctx, "alice", "mallory", 0); err != nil {
			t.Fatal(err)
		}
	}
	calls := []struct {
		name string
		want int64
		call func() error
	}{
		{"Append to two inboxes", 1, func() error { _, err := s.Append(ctx, dm); return err }},
		{"Append to one inbox", 1, func() error { _, err := s.Append(ctx, dm[:1]); return err }},
		{"Append with overflow", 1, func() error { _, err := s.Append(ctx, dm); return err }},
		{"Submit with a key and pushes", 1, func() error {
			_, err := s.Submit(ctx, inbox.Request{Msgs: dm, Key: newKey(), PushAfter: time.Minute})
			return err
		}},
		{"Submit refused: the recipient blocked the sender", 1, func() error {
			_, err := s.Submit(ctx, inbox.Request{Msgs: dm, Key: newKey(), RefuseIfBlocked: "mallory"})
			return wantBlocked(err)
		}},
		{"Submit checked against a block list", 1, func() error {
			_, err := s.Submit(ctx, inbox.Request{Msgs: dm, Key: newKey(), RefuseIfBlocked: "bob"})
			return err
		}},
		{"Submit of a resend", 1, func() error {
			_, err := s.Submit(ctx, inbox.Request{Msgs: dm, Key: "resent"})
			return err
		}},
		{"Append, Cluster protocol", 2, func() error { _, err := locked.Append(ctx, dm); return err }},
		{"Submit with a key, Cluster protocol", 2, func() error {
			_, err := locked.Submit(ctx, inbox.Request{Msgs: dm, Key: newKey(), PushAfter: time.Minute})
			return err
		}},
		{"Submit refused, Cluster protocol", 2, func() error { // the locks, then the release of the one taken
			_, err := locked.Submit(ctx, inbox.Request{Msgs: dm, Key: newKey(), RefuseIfBlocked: "mallory"})
			return wantBlocked(err)
		}},
		{"Submit of a resend, Cluster protocol", 2, func() error {
			_, err := locked.Submit(ctx, inbox.Request{Msgs: dm, Key: "resent"})
			return err
		}},
		{"Read", 1, func() error { _, err := s.Read(ctx, "alice", 0, 50); return err }},
		{"Bounds", 1, func() error { _, _, err := s.Bounds(ctx, "alice"); return err }},
		{"Cursor", 1, func() error { _, _, err := s.Cursor(ctx, "alice", "d"); return err }},
		{"SetCursor", 1, func() error { return s.SetCursor(ctx, "alice", "d", 1) }},
		{"WriteAcks", 1, func() error {
			return s.WriteAcks(ctx, []inbox.CursorPos{{UID: "alice", Device: "d", Seq: 2}, {UID: "bob", Device: "d", Seq: 2}},
				[]inbox.PushRange{{UID: "alice", From: 1, To: 2}})
		}},
		{"Thread", 1, func() error { _, err := s.Thread(ctx, "alice", "bob", 0, 50); return err }},
		{"Threads", 1, func() error { _, err := s.Threads(ctx, "alice", 0, 0); return err }},
		{"Unread", 1, func() error { _, err := s.Unread(ctx, "alice"); return err }},
		{"MarkRead", 1, func() error { return s.MarkRead(ctx, "alice", "bob", 1) }},
		{"ReadMark", 1, func() error { _, err := s.ReadMark(ctx, "alice", "bob"); return err }},
		{"Delete", 1, func() error { _, err := s.Delete(ctx, "alice", 3); return err }},
	}
	// The first runs load the scripts into Redis (EVALSHA, then EVAL);
	// a resend's release of its locks runs only from the second.
	for range 2 {
		for _, c := range calls {
			if err := c.call(); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
	}
	for _, c := range calls {
		rt.n.Store(0)
		if err := c.call(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if n := rt.n.Load(); n != c.want {
			t.Errorf("%s took %d round trips, want %d", c.name, n, c.want)
		}
	}
}

// wantBlocked turns the refusal a call should end in into success.
func wantBlocked(err error) error {
	if errors.Is(err, inbox.ErrBlocked) {
		return nil
	}
	return fmt.Errorf("want ErrBlocked, got %w", err)
}
