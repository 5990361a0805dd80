package api_test

import (
	"net/http"
	"slices"
	"strconv"
	"testing"

	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/messaging"
)

// conversationPage is GET /api/v1/conversations.
type conversationPage struct {
	Conversations []api.Conversation `json:"conversations"`
	Next          string             `json:"next"`
}

func (f *fixture) conversationPage(t *testing.T, uid, query string) conversationPage {
	t.Helper()
	r := f.do(t, "GET", "/api/v1/conversations"+query, bearer(f.userToken(t, uid)), "")
	wantStatus(t, r, http.StatusOK)
	var p conversationPage
	r.decode(t, &p)
	return p
}

// The conversation list pages with limit and cursor: pages of limit
// conversations, newest first, next "" only on the last page (not on a
// full page that happens to be the last, and the notice thread, which is
// not a conversation, takes no room), no conversation twice nor skipped,
// also when a listed one gets a new message between two pages.
func TestConversations_Paging(t *testing.T) {
	f := newFixture(t, 0)
	var peers []string // oldest first
	for i := range 7 {
		peer := strconv.Itoa(20001 + i)
		peers = append(peers, peer)
		f.send(t, peer, bob, "hi "+peer)
		if i == 3 {
			f.notice(t, messaging.Notice{UIDs: []string{bob}, Content: "shipped"})
		}
	}
	newestFirst := slices.Clone(peers)
	slices.Reverse(newestFirst)

	var got []string
	var sizes []int
	query := "?limit=3"
	for range 10 {
		p := f.conversationPage(t, bob, query)
		sizes = append(sizes, len(p.Conversations))
		for _, c := range p.Conversations {
			got = append(got, c.Peer)
		}
		if len(got) == 3 {
			// The newest listed conversation gets a message: it moves to
			// the front, and the next page goes on where this one ended.
			f.send(t, newestFirst[0], bob, "again")
		}
		if p.Next == "" {
			break
		}
		query = "?limit=3&cursor=" + p.Next
	}
	if !slices.Equal(got, newestFirst) || !slices.Equal(sizes, []int{3, 3, 1}) {
		t.Fatalf("pages %v listed %v, want %v in pages of 3, 3, 1", sizes, got, newestFirst)
	}

	// Exactly one full page: its next is "", there is nothing after it.
	if p := f.conversationPage(t, bob, "?limit=7"); len(p.Conversations) != 7 || p.Next != "" {
		t.Fatalf("limit=7 of 7: %d conversations, next %q, want 7 and \"\"", len(p.Conversations), p.Next)
	}
	// Without limit: up to PageSize; limit is clamped to it.
	if p := f.conversationPage(t, bob, "?limit=5000"); len(p.Conversations) != 7 || p.Next != "" {
		t.Fatalf("limit=5000: %d conversations, next %q", len(p.Conversations), p.Next)
	}
	// A cursor below every message: an empty last page.
	first := f.thread(t, bob, peers[0])
	if p := f.conversationPage(t, bob, "?cursor="+first[len(first)-1].ID); len(p.Conversations) != 0 || p.Next != "" {
		t.Fatalf("cursor at the oldest message: %+v", p)
	}

	for _, tc := range []struct{ name, query string }{
		{"deny: cursor not a msgid", "?cursor=abc"},
		{"deny: cursor with a leading zero", "?cursor=012"},
		{"deny: limit 0", "?limit=0"},
		{"deny: limit negative", "?limit=-3"},
		{"deny: limit not a number", "?limit=ten"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f.wantError(t, f.do(t, "GET", "/api/v1/conversations"+tc.query, bearer(f.userToken(t, bob)), ""), http.StatusBadRequest, "bad_field")
		})
	}
}
