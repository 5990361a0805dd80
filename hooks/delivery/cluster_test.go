package delivery

import (
	"context"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// boundsCounter is a store that answers Bounds only, and counts the calls.
type boundsCounter struct {
	inbox.Store // nil: any other call panics
	calls       map[string]int
}

func (s *boundsCounter) Bounds(_ context.Context, uid string) (first, last uint64, err error) {
	s.calls[uid]++
	return 1, 7, nil
}

// A connection starting delivery of the broadcast log takes the log's end
// from the hook once the hook knows it, not from the store: in a reconnect
// storm every connection subscribes to broadcast. Inboxes are always asked.
func TestLogEnd_BroadcastFromTheHookOnceKnown(t *testing.T) {
	store := &boundsCounter{calls: map[string]int{}}
	h := &Hook{opts: Options{Store: store}}
	ctx := context.Background()

	if last, err := h.logEnd(ctx, inbox.BroadcastInbox); err != nil || last != 7 || store.calls[inbox.BroadcastInbox] != 1 {
		t.Fatalf("position unknown: last %d, err %v, %d store calls; want the store's 7 from 1 call", last, err, store.calls[inbox.BroadcastInbox])
	}
	h.learnBroadcastEnd(ctx)
	h.offerBroadcasts([]inbox.Message{{UID: inbox.BroadcastInbox, Seq: 9}}) // no connections: only the position moves
	for range 3 {
		if last, err := h.logEnd(ctx, inbox.BroadcastInbox); err != nil || last != 9 {
			t.Fatalf("position known: last %d, err %v; want 9", last, err)
		}
	}
	if n := store.calls[inbox.BroadcastInbox]; n != 2 { // the first logEnd and learnBroadcastEnd
		t.Fatalf("%d store calls for the broadcast log's end, want 2", n)
	}
	if last, err := h.logEnd(ctx, "10021"); err != nil || last != 7 || store.calls["10021"] != 1 {
		t.Fatalf("inbox: last %d, err %v, %d store calls; want the store's 7 from 1 call", last, err, store.calls["10021"])
	}
}
