package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// upgradeBatch is the size at which the upgrade commits a batch and starts
// another, so that a large store does not need one huge batch in memory.
const upgradeBatch = 4 << 20

// upgradeV1 brings a layout 1 store to layout 2: it adds the thread index
// entry of every message and rewrites each head, an 8-byte last Seq in
// layout 1, as last, first and held. Open calls it before the store is in
// use, and then upgradeRequests, which writes the version. It is safe to
// run again after a crash part-way: the store is marked layout 4 only
// after both, index entries are rewritten as they were, and a head that
// was already rewritten is recounted from its last.
func (s *Store) upgradeV1() (err error) {
	heads, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixHead}, UpperBound: []byte{prefixHead + 1}})
	if err != nil {
		return fmt.Errorf("iterator: %w", err)
	}
	defer func() { err = errors.Join(err, heads.Close()) }()
	msgs, err := s.db.NewIter(&pebble.IterOptions{LowerBound: msgSpaceStart, UpperBound: msgSpaceEnd})
	if err != nil {
		return fmt.Errorf("iterator: %w", err)
	}
	defer func() { err = errors.Join(err, msgs.Close()) }()
	b := s.db.NewBatch()
	defer func() { err = errors.Join(err, b.Close()) }()

	var key, val []byte
	for ok := heads.First(); ok; ok = heads.Next() {
		uid := string(heads.Key()[1:])
		var h head
		switch v := heads.Value(); len(v) {
		case 8:
			h.last = binary.BigEndian.Uint64(v)
		case headLen:
			if h, err = decodeHead(v); err != nil {
				return fmt.Errorf("head of %s: %w", uid, err)
			}
		default:
			return fmt.Errorf("head of %s: %w: %d bytes", uid, errCorrupt, len(v))
		}
		h.first, h.held = h.last+1, 0
		end := appendMsgEnd(nil, uid)
		for ok := msgs.SeekGE(appendMsgKey(nil, uid, 0)); ok && bytes.Compare(msgs.Key(), end) < 0; ok = msgs.Next() {
			_, seq, err := parseMsgKey(msgs.Key())
			if err != nil {
				return err
			}
			if seq == 0 || seq > h.last {
				return fmt.Errorf("%s: %w: message seq %d outside 1..%d", uid, errCorrupt, seq, h.last)
			}
			meta, err := decodeMeta(msgs.Value())
			if err != nil {
				return fmt.Errorf("%s seq %d: %w", uid, seq, err)
			}
			if h.held == 0 {
				h.first = seq
			}
			h.held++
			th := meta.thread()
			if th == "" {
				continue
			}
			var m inbox.Message
			if err := decodeMessage(msgs.Value(), &m); err != nil {
				return fmt.Errorf("%s seq %d: %w", uid, seq, err)
			}
			key = appendIndexKey(key[:0], uid, th, seq)
			val = appendIndexValue(val[:0], m.Kind, m.MsgType)
			if err := b.Set(key, val, nil); err != nil {
				return fmt.Errorf("batch: %w", err)
			}
		}
		if err := msgs.Error(); err != nil {
			return fmt.Errorf("iterator: %w", err)
		}
		if err := b.Set(headKey(uid), encodeHead(h), nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		if b.Len() >= upgradeBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			if err := b.Close(); err != nil {
				return fmt.Errorf("batch: %w", err)
			}
			b = s.db.NewBatch()
		}
	}
	if err := heads.Error(); err != nil {
		return fmt.Errorf("iterator: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}
