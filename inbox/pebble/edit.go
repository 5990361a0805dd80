package pebblestore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Edit implements inbox.Editor: the message's value is rewritten under the
// same key, so its thread index entry (keyed by Seq) stays valid. It holds
// s.mu from the read to the write, like Delete, so an edit never revives
// a message deleted or dropped meanwhile.
func (s *Store) Edit(ctx context.Context, uid string, seq uint64, content string, at int64) (bool, error) {
	wrap := func(err error) error { return fmt.Errorf("pebblestore: edit %s/%d: %w", uid, seq, err) }
	if err := ctx.Err(); err != nil {
		return false, wrap(err)
	}
	if err := checkUID(uid); err != nil {
		return false, wrap(err)
	}
	if err := s.life.Enter(); err != nil {
		return false, wrap(err)
	}
	defer s.life.Exit()

	b := s.db.NewBatch()
	ok, err := s.applyEdit(b, uid, seq, content, at)
	if err != nil || !ok {
		return false, errors.Join(err, b.Close())
	}
	if err := b.SyncWait(); err != nil {
		return false, errors.Join(wrap(fmt.Errorf("sync: %w", err)), b.Close())
	}
	if err := b.Close(); err != nil {
		return false, wrap(err)
	}
	return true, nil
}

// applyEdit writes the edited message into b and applies b without
// waiting for its fsync. ok is false, and b untouched, when uid holds no
// message seq.
func (s *Store) applyEdit(b *pebble.Batch, uid string, seq uint64, content string, at int64) (bool, error) {
	wrap := func(err error) error { return fmt.Errorf("pebblestore: edit %s/%d: %w", uid, seq, err) }
	s.mu.Lock()
	defer s.mu.Unlock()
	key := appendMsgKey(nil, uid, seq)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err)
	}
	var m inbox.Message
	err = decodeMessage(val, &m)
	// decodeMessage's strings are copies (one string of the value), so the
	// value may be released before m is encoded again.
	if cerr := closer.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return false, wrap(err)
	}
	id, err := strconv.ParseUint(m.ID, 10, 64)
	if err != nil {
		return false, wrap(fmt.Errorf("id %q: %w", m.ID, err))
	}
	m.Content, m.Edited = content, at
	if err := b.Set(key, appendMessage(nil, id, &m), nil); err != nil {
		return false, wrap(fmt.Errorf("batch: %w", err))
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return false, wrap(fmt.Errorf("apply: %w", err))
	}
	return true, nil
}
