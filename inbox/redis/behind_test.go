package redisstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// threadOrder lists uid's threads newest first, with their newest Seq.
func threadOrder(t *testing.T, s *Store, uid string) []string {
	t.Helper()
	ths, err := s.Threads(context.Background(), uid, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, th := range ths {
		out = append(out, fmt.Sprintf("%s@%d", th.Thread, th.Last.Seq))
	}
	return out
}

// th, the list of threads by newest message, is written behind: appends
// keep its entries in h until they pass pendingMax bytes. Whatever reads
// or rewrites th must see them: Threads, Unread, Delete, expiry and the
// trim of an inbox at its cap.
func TestThreadsWrittenBehind(t *testing.T) {
	c := sharedServer(t).Client(t)
	ctx := context.Background()
	dm := func(to, from string) []inbox.Message {
		return []inbox.Message{{UID: to, Kind: inbox.KindDirect, Peer: from}, {UID: from, Kind: inbox.KindSent, Peer: to}}
	}
	appendAll := func(t *testing.T, s *Store, reqs ...[]inbox.Message) {
		t.Helper()
		for _, r := range reqs {
			if _, err := s.Append(ctx, r); err != nil {
				t.Fatal(err)
			}
		}
	}
	pending := func(t *testing.T, s *Store, uid string) string {
		t.Helper()
		p, err := c.HGet(ctx, s.k.base(uid)+sufMeta, "P").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return p
	}

	t.Run("flushed once full, without a read", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{})
		var sent int
		for i := 0; pending(t, s, "alice") != "" || i == 0; i++ {
			appendAll(t, s, dm(fmt.Sprintf("peer-with-a-long-uid-%03d", i), "alice"))
			sent++
			if sent > pendingMax {
				t.Fatalf("%d appends and th's entries are still pending", sent)
			}
		}
		n, err := c.ZCard(ctx, s.k.base("alice")+sufThreads).Result()
		if err != nil || n != int64(sent) {
			t.Errorf("th holds %d threads after the flush, want %d (%v)", n, sent, err)
		}
		if sent < 3 {
			t.Errorf("th was flushed after %d appends: it is not written behind", sent)
		}
	})

	t.Run("Threads and Unread see pending entries", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{})
		appendAll(t, s, dm("alice", "bob"), dm("alice", "carol"), dm("alice", "bob"))
		if p := pending(t, s, "alice"); p == "" {
			t.Fatal("nothing pending: the test would not test the write-behind")
		}
		if got, want := threadOrder(t, s, "alice"), []string{"bob@3", "carol@2"}; !slices.Equal(got, want) {
			t.Errorf("threads %v, want %v", got, want)
		}
		appendAll(t, s, dm("alice", "carol")) // pending again, over a flushed th
		u, err := s.Unread(ctx, "alice")
		if err != nil || u.Total != 4 || u.Threads["bob"] != 2 || u.Threads["carol"] != 2 {
			t.Errorf("Unread = %+v, %v; want bob 2, carol 2", u, err)
		}
		if got, want := threadOrder(t, s, "alice"), []string{"carol@4", "bob@3"}; !slices.Equal(got, want) {
			t.Errorf("threads %v, want %v", got, want)
		}
	})

	t.Run("Delete of a thread's newest, still pending", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{})
		appendAll(t, s, dm("alice", "bob"), dm("alice", "carol"), dm("alice", "bob"))
		if ok, err := s.Delete(ctx, "alice", 3); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		if got, want := threadOrder(t, s, "alice"), []string{"carol@2", "bob@1"}; !slices.Equal(got, want) {
			t.Errorf("threads %v, want %v", got, want)
		}
		if ok, err := s.Delete(ctx, "alice", 2); err != nil || !ok {
			t.Fatalf("Delete = %v, %v", ok, err)
		}
		if got, want := threadOrder(t, s, "alice"), []string{"bob@1"}; !slices.Equal(got, want) {
			t.Errorf("threads %v after carol's only message went, want %v", got, want)
		}
	})

	t.Run("trim at the cap with pending entries", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{MaxPerInbox: 2})
		appendAll(t, s, dm("alice", "bob"), dm("alice", "carol"), dm("alice", "dave"))
		if got, want := threadOrder(t, s, "alice"), []string{"dave@3", "carol@2"}; !slices.Equal(got, want) {
			t.Errorf("threads %v, want %v (bob's only message was dropped)", got, want)
		}
	})

	t.Run("expiry with pending entries", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{})
		appendAll(t, s, dm("alice", "bob"), dm("alice", "carol"))
		if _, err := s.ExpireBefore(ctx, time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := threadOrder(t, s, "alice"); len(got) != 0 {
			t.Errorf("threads %v after everything expired, want none", got)
		}
	})

	t.Run("a pending entry over th as an older build wrote it", func(t *testing.T) {
		s := openStore(t, c, newPrefix(), inbox.Options{})
		appendAll(t, s, dm("alice", "bob"), dm("alice", "carol"))
		// Threads writes every entry to th and clears P: what an older
		// build, which wrote th at every append, leaves.
		if _, err := s.Threads(ctx, "alice", 0, 0); err != nil {
			t.Fatal(err)
		}
		appendAll(t, s, dm("alice", "bob"))
		if got, want := threadOrder(t, s, "alice"), []string{"bob@3", "carol@2"}; !slices.Equal(got, want) {
			t.Errorf("threads %v, want %v", got, want)
		}
	})
}

// The submit script reads a recipient's block list only when h says it
// may hold someone (b); a list written before b existed still counts.
func TestBlockListMark(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{}) // its own: the command counts are the server's
	c := srv.Client(t)
	ctx := context.Background()
	s := openStore(t, c, newPrefix(), inbox.Options{})
	dm := func(from string) inbox.Request {
		return inbox.Request{Msgs: []inbox.Message{
			{UID: "bob", Kind: inbox.KindDirect, Peer: from},
			{UID: from, Kind: inbox.KindSent, Peer: "bob"},
		}, RefuseIfBlocked: from}
	}
	mark := func() string {
		t.Helper()
		v, err := c.HGet(ctx, s.k.base("bob")+sufMeta, "b").Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			t.Fatal(err)
		}
		return v
	}
	// A block list an older build wrote: the set alone, no mark.
	if err := c.SAdd(ctx, s.k.base("bob")+sufBlocks, "mallory").Err(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		before   func() error
		from     string
		blocked  bool
		wantMark string
	}{
		{"old list, no mark: read, refused", nil, "mallory", true, ""},
		{"old list, no mark: read, allowed and marked", nil, "alice", false, "1"},
		{"unblocked to empty: marked none", func() error { _, err := s.Unblock(ctx, "bob", "mallory"); return err }, "mallory", false, "0"},
		{"blocked again: marked", func() error { _, err := s.Block(ctx, "bob", "mallory", 0); return err }, "mallory", true, "1"},
		{"still refused after another block and unblock", func() error {
			if _, err := s.Block(ctx, "bob", "eve", 0); err != nil {
				return err
			}
			_, err := s.Unblock(ctx, "bob", "eve")
			return err
		}, "mallory", true, "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				if err := tt.before(); err != nil {
					t.Fatal(err)
				}
			}
			_, err := s.Submit(ctx, dm(tt.from))
			if got := errors.Is(err, inbox.ErrBlocked); got != tt.blocked || (!tt.blocked && err != nil) {
				t.Fatalf("Submit from %s = %v, want blocked %v", tt.from, err, tt.blocked)
			}
			if got := mark(); got != tt.wantMark {
				t.Errorf("bob's mark %q, want %q", got, tt.wantMark)
			}
		})
	}
	// With the mark at "0", a message costs no read of the list.
	if _, err := s.Unblock(ctx, "bob", "mallory"); err != nil {
		t.Fatal(err)
	}
	_, by := commandsOf(t, srv, func() {
		if _, err := s.Submit(ctx, dm("alice")); err != nil {
			t.Fatal(err)
		}
	})
	if by["sismember"] != 0 || by["exists"] != 0 {
		t.Errorf("a message to a user who blocks nobody ran %v", by)
	}
}
