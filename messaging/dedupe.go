package messaging

import (
	"crypto/sha256"
	"encoding/binary"

	"github.com/inboxmq/inboxmq/inbox"
)

// A resent im/sendmsg (a QoS 1 publish whose PUBACK was lost, or an app's
// own retry: same cid, recipient and content) must not be stored twice.
// The store keeps a record of each request with a cid, written with its
// entries (inbox.Request.Key), so a resend is answered with the original
// message on any node, within the store's dedupe window.

// requestKey names a request: the sender and the client's id for it.
// uids hold no space (acl.ValidUID), so the key is unambiguous.
func requestKey(from, cid string) string {
	if cid == "" {
		return ""
	}
	return from + " " + cid
}

// contentSum identifies what a request sent, for matching a resend without
// keeping the content: 32 bytes per remembered send instead of up to two
// 64 KiB strings.
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

// request builds the store request of one logical message: its entries,
// and the push schedule of the incoming ones when the push fallback is on.
func (h *Service) request(msgs []inbox.Message) inbox.Request {
	req := inbox.Request{Msgs: msgs}
	if p := h.pushes.Load(); p != nil {
		req.PushAfter = p.opts.After
	}
	return req
}
