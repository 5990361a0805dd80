package delivery

import (
	"sync"
	"time"

	"github.com/inboxmq/inboxmq/inbox"
)

// recentSends remembers the last few client ids (cid) each account sent,
// so a resent im/sendmsg (a QoS 1 publish whose PUBACK was lost, or an
// app's own retry: same cid, recipient and content) is acknowledged again
// instead of stored twice. It is
// per node: a resend that reaches another node is stored again (QoS 1
// semantics, at least once).
type recentSends struct {
	mu    sync.Mutex
	byUID map[string]*sendRing // guarded by mu
	swept time.Time
}

const (
	recentPerUID = 32               // cids remembered per account
	recentFor    = 10 * time.Minute // how long a cid is remembered
)

type sendRing struct {
	cids [recentPerUID]string
	msgs [recentPerUID]inbox.Message
	at   [recentPerUID]time.Time
	next int
	seen time.Time
}

func newRecentSends() *recentSends { return &recentSends{byUID: make(map[string]*sendRing)} }

// get returns the message uid sent with cid recently.
func (r *recentSends) get(uid, cid string) (inbox.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.byUID[uid]
	if ring == nil {
		return inbox.Message{}, false
	}
	for i, c := range ring.cids {
		if c == cid && time.Since(ring.at[i]) < recentFor {
			return ring.msgs[i], true
		}
	}
	return inbox.Message{}, false
}

// put remembers that uid sent m with cid.
func (r *recentSends) put(uid, cid string, m inbox.Message) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if now.Sub(r.swept) > time.Minute {
		for k, ring := range r.byUID {
			if now.Sub(ring.seen) > recentFor {
				delete(r.byUID, k)
			}
		}
		r.swept = now
	}
	ring := r.byUID[uid]
	if ring == nil {
		ring = &sendRing{}
		r.byUID[uid] = ring
	}
	ring.cids[ring.next], ring.msgs[ring.next], ring.at[ring.next] = cid, m, now
	ring.next = (ring.next + 1) % recentPerUID
	ring.seen = now
}
