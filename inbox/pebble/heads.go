package pebblestore

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"
)

// Heads in layout 3. Writing both heads with every direct message cost two
// of its memtable inserts (a fifth of the write; the inserts are a quarter
// of the broker's CPU per message in a profile). So an append writes a
// head only when it drops messages (overflow) or when last passes a
// multiple of headEvery; Delete and expiry write heads as before. Every
// batch that removes messages writes the head, so the messages above a
// stored head's last are exactly the appends since it was written:
// headLocked counts them (at most headEvery-1 keys) when it loads the head.

// headEvery bounds the appends a stored head may lag behind, and so the
// keys headLocked steps over.
const headEvery = 64

// headWriteDue reports whether an append without overflow that took a
// head from was to h must write it.
func headWriteDue(was, h head) bool {
	return h.last/headEvery != was.last/headEvery
}

// headLocked returns uid's held state, loading and caching it on first
// use: the stored head, with the appends since it was written. s.mu must
// be held. A uid never appended to is not cached, so lookups of unknown
// uids do not grow the cache.
func (s *Store) headLocked(uid string) (head, error) {
	if h, ok := s.heads[uid]; ok {
		return h, nil
	}
	h, stored := head{first: 1}, true
	val, closer, err := s.db.Get(headKey(uid))
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		stored = false
	case err != nil:
		return head{}, fmt.Errorf("read head of %s: %w", uid, err)
	default:
		h, err = decodeHead(val)
		if cerr := closer.Close(); cerr != nil && err == nil {
			err = cerr
		}
		if err != nil {
			return head{}, fmt.Errorf("read head of %s: %w", uid, err)
		}
	}
	h, appended, err := s.withAppendsLocked(uid, h)
	if err != nil {
		return head{}, fmt.Errorf("read head of %s: %w", uid, err)
	}
	if stored || appended > 0 {
		s.heads[uid] = h
	}
	return h, nil
}

// withAppendsLocked adds to h, uid's stored head, the messages appended
// after it was written: those above its last. s.mu must be held.
func (s *Store) withAppendsLocked(uid string, h head) (head, int, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: appendMsgKey(nil, uid, h.last+1),
		UpperBound: appendMsgEnd(nil, uid),
	})
	if err != nil {
		return head{}, 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		_, seq, err := parseMsgKey(it.Key())
		if err != nil {
			return head{}, 0, errors.Join(err, it.Close())
		}
		if h.held == 0 {
			h.first = seq
		}
		h.held++
		h.last = seq
		n++
	}
	return h, n, it.Close()
}
