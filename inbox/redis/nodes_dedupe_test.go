package redisstore

import (
	"context"
	"crypto/sha256"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// A resend that reaches another node (the client reconnected elsewhere)
// is found there and not stored twice: the request record is in Redis,
// in the recipient's inbox, on both append protocols.
func TestResendOnAnotherNode(t *testing.T) {
	c := sharedServer(t).Client(t)
	ctx := context.Background()
	open := map[string]func(prefix string, node int) *Store{
		"one script": func(p string, n int) *Store { return openStore(t, c, p, inbox.Options{NodeID: n}) },
		"lock protocol": func(p string, n int) *Store {
			return openLockStore(t, c, p, inbox.Options{NodeID: n})
		},
	}
	for name, openNode := range open {
		t.Run(name, func(t *testing.T) {
			prefix := newPrefix()
			first, second := openNode(prefix, 1), openNode(prefix, 2)
			req := inbox.Request{Msgs: []inbox.Message{
				{UID: "bob", Kind: inbox.KindDirect, Peer: "alice", Content: "hi"},
				{UID: "alice", Kind: inbox.KindSent, Peer: "bob", Content: "hi", CID: "c-1"},
			}, Key: "alice c-1", Sum: sha256.Sum256([]byte("bob\x00hi")), RefuseIfBlocked: "alice"}
			stored, err := first.Submit(ctx, req)
			if err != nil || stored.Duplicate {
				t.Fatalf("Submit on node 1 = duplicate %v, %v", stored.Duplicate, err)
			}
			again, err := second.Submit(ctx, req)
			if err != nil || !again.Duplicate {
				t.Fatalf("resend on node 2 = duplicate %v, %v; want the duplicate", again.Duplicate, err)
			}
			for i := range stored.Msgs {
				if a, b := stored.Msgs[i], again.Msgs[i]; a.ID != b.ID || a.Seq != b.Seq || a.Time != b.Time {
					t.Errorf("entry %d: node 2 answered id %s seq %d, node 1 stored id %s seq %d", i, b.ID, b.Seq, a.ID, a.Seq)
				}
			}
			for _, uid := range []string{"alice", "bob"} {
				if _, last, err := second.Bounds(ctx, uid); err != nil || last != 1 {
					t.Errorf("%s holds up to %d (%v), want the one message", uid, last, err)
				}
			}
			// Another request under the same key (other content) is new.
			other := req
			other.Sum = sha256.Sum256([]byte("bob\x00other"))
			if r, err := second.Submit(ctx, other); err != nil || r.Duplicate {
				t.Errorf("another request under the key = duplicate %v, %v; want it stored", r.Duplicate, err)
			}
		})
	}
}
