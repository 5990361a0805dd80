package delivery

import (
	"crypto/sha256"
	"encoding/binary"
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
	msgs [recentPerUID]inbox.Message // without Content and Extra, see put
	sums [recentPerUID][sha256.Size]byte
	at   [recentPerUID]time.Time
	next int
	seen time.Time
}

// contentSum identifies what a request sent, for matching a resend without
// keeping the content: 32 bytes per remembered send instead of up to two
// 64 KiB strings (4.3 MB per account with large messages).
func contentSum(to, msg, extra string) [sha256.Size]byte {
	h := sha256.New()
	for _, s := range []string{to, msg, extra} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(s)))
		h.Write(n[:])
		h.Write([]byte(s))
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func newRecentSends() *recentSends { return &recentSends{byUID: make(map[string]*sendRing)} }

// get returns the message uid sent with cid recently, if it went to the
// same recipient with the same content and extra (sum, see contentSum).
// The message has no Content or Extra: the caller has them.
func (r *recentSends) get(uid, cid string, sum [sha256.Size]byte) (inbox.Message, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ring := r.byUID[uid]
	if ring == nil {
		return inbox.Message{}, false
	}
	for i, c := range ring.cids {
		if c == cid && ring.sums[i] == sum && time.Since(ring.at[i]) < recentFor {
			return ring.msgs[i], true
		}
	}
	return inbox.Message{}, false
}

// put remembers that uid sent m with cid; sum is contentSum of the request.
func (r *recentSends) put(uid, cid string, sum [sha256.Size]byte, m inbox.Message) {
	m.Content, m.Extra = "", ""
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
	ring.cids[ring.next], ring.msgs[ring.next], ring.sums[ring.next], ring.at[ring.next] = cid, m, sum, now
	ring.next = (ring.next + 1) % recentPerUID
	ring.seen = now
}
