package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// threadNames lists the threads of a Threads page, in order.
func threadNames(page []inbox.ThreadSummary) []string {
	names := make([]string, len(page))
	for i, th := range page {
		names[i] = th.Thread
	}
	return names
}

// Threads pages by the Seq of each thread's newest message: a page's
// last Last.Seq, passed as before, continues exactly where it ended, also
// when a thread moves to the front between two pages, and every field of a
// paged summary is what the unpaged list says.
func testThreadsPaging(t *testing.T, open Opener) {
	s := open(t, inbox.Options{})
	ctx := context.Background()
	for _, peer := range []string{"p1", "p2", "p3", "p4", "p5"} {
		dm(t, s, peer, "alice", "from "+peer)
	}
	notice(t, s, "alice", 1, "n1")
	dm(t, s, "p2", "alice", "again") // p2 moves to the front
	all := mustThreads(t, s, "alice")
	wantAll := []string{"p2", inbox.NoticeThread, "p5", "p4", "p3", "p1"}
	if got := threadNames(all); !slices.Equal(got, wantAll) {
		t.Fatalf("Threads(alice, 0, 0) = %q, want %q", got, wantAll)
	}

	tests := []struct {
		name   string
		before uint64
		limit  int
		want   []string
	}{
		{"first page", 0, 2, wantAll[:2]},
		{"next page", all[1].Last.Seq, 2, wantAll[2:4]},
		{"last page, short", all[3].Last.Seq, 4, wantAll[4:]},
		{"past the end", all[5].Last.Seq, 2, nil},
		{"limit 0 is all", 0, 0, wantAll},
		{"negative limit is all", 0, -1, wantAll},
		{"limit above the count", 0, 100, wantAll},
		{"before above every Seq", all[0].Last.Seq + 100, 1, wantAll[:1]},
		{"before 1: nothing is below", 1, 10, nil},
		{"before between threads", all[2].Last.Seq + 1, 10, wantAll[2:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := s.Threads(ctx, "alice", tt.before, tt.limit)
			if err != nil {
				t.Fatalf("Threads(alice, %d, %d): %v", tt.before, tt.limit, err)
			}
			if names := threadNames(got); !slices.Equal(names, tt.want) && (len(names) > 0 || len(tt.want) > 0) {
				t.Fatalf("Threads(alice, %d, %d) = %q, want %q", tt.before, tt.limit, names, tt.want)
			}
			for _, g := range got {
				i := slices.IndexFunc(all, func(a inbox.ThreadSummary) bool { return a.Thread == g.Thread })
				if g.Last.ID != all[i].Last.ID || g.Unread != all[i].Unread || g.ReadMark != all[i].ReadMark {
					t.Errorf("paged %q = %+v, unpaged %+v", g.Thread, g, all[i])
				}
			}
		})
	}

	// A thread that gets a message after page 1 was read moves to the
	// front: page 2 neither repeats a thread nor skips one that stayed.
	page1 := mustThreadsPage(t, s, "alice", 0, 2)
	dm(t, s, "p4", "alice", "later")
	page2 := mustThreadsPage(t, s, "alice", page1[1].Last.Seq, 10)
	if got, want := threadNames(page2), []string{"p5", "p3", "p1"}; !slices.Equal(got, want) {
		t.Errorf("page 2 after p4 moved to the front = %q, want %q", got, want)
	}
	if got := threadNames(mustThreadsPage(t, s, "nobody", 0, 10)); len(got) != 0 {
		t.Errorf("Threads of an empty inbox = %q, want none", got)
	}
}

func mustThreadsPage(t *testing.T, s inbox.Store, uid string, before uint64, limit int) []inbox.ThreadSummary {
	t.Helper()
	got, err := s.Threads(context.Background(), uid, before, limit)
	if err != nil {
		t.Fatalf("Threads(%q, %d, %d): %v", uid, before, limit, err)
	}
	return got
}
