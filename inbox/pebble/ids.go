package pebblestore

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// idReserve is how far ahead of the clock keyLastID is set.
const idReserve = time.Second

// reserveIDsLocked keeps keyLastID at or above id, the id b carries: when
// id is past the stored value, b also stores the id of idReserve from now
// (or id, if higher). So the key is rewritten about once a second, not
// with every message (each write of it is one more memtable insert), and
// a reopened store, starting after the stored value, still never issues
// an id it issued before, whatever the clock did. The price: ids issued
// in the first second after a restart may be up to idReserve ahead of the
// clock. It returns the value stored from now on. s.mu must be held.
func (s *Store) reserveIDsLocked(b *pebble.Batch, id uint64, now time.Time) (uint64, error) {
	if id <= s.idsBelow {
		return s.idsBelow, nil
	}
	below := max(id, inbox.NewIDGen(s.opts.NodeID, 0).Next(now.Add(idReserve)))
	if err := b.Set(keyLastID, encodeUint(below), nil); err != nil {
		return 0, fmt.Errorf("batch: %w", err)
	}
	return below, nil
}
