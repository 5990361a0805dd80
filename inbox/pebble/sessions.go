package pebblestore

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Persistent sessions and retained messages live under their own prefixes:
//
//	"s" id                 -> session (inbox.EncodeSession)
//	"x" expires(8) id      -> empty: the expiry index of disconnected sessions
//	"R" topic              -> retained message (opaque to the store)
//
// The expiry index makes ExpireSessions one ordered scan from the start of
// its prefix, however many sessions are held by connections.
const (
	prefixSession  = 's'
	prefixSessExp  = 'x'
	prefixRetained = 'R'
)

func sessionKey(id string) []byte {
	return append([]byte{prefixSession}, id...)
}

func sessExpKey(expires int64, id string) []byte {
	k := binary.BigEndian.AppendUint64([]byte{prefixSessExp}, uint64(expires))
	return append(k, id...)
}

func retainedKey(topic string) []byte {
	return append([]byte{prefixRetained}, topic...)
}

// PutSession implements inbox.Sessions. The write is not synced: Pebble's
// log writer puts it in the WAL file within moments, where a crash of the
// process does not lose it, and the next synced write (the SUBACK's, the
// next message's) makes it durable.
func (s *Store) PutSession(ctx context.Context, sess inbox.Session) error {
	_, err := s.writeSession(ctx, "put session", sess, false, false)
	return err
}

// UpdateSession implements inbox.Sessions; the write is synced.
func (s *Store) UpdateSession(ctx context.Context, sess inbox.Session) (bool, error) {
	return s.writeSession(ctx, "update session", sess, true, true)
}

// writeSession stores sess, if onlyOwner then only while sess.Owner holds
// the stored one, replacing its expiry index entry; if synced it returns
// once the write is durable.
func (s *Store) writeSession(ctx context.Context, what string, sess inbox.Session, onlyOwner, synced bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if sess.ID == "" {
		return false, fmt.Errorf("pebblestore: %s: empty session id", what)
	}
	val, err := inbox.EncodeSession(sess)
	if err != nil {
		return false, fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if err := s.life.Enter(); err != nil {
		return false, fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	defer s.life.Exit()
	b := s.db.NewBatch()
	defer b.Close()
	applied, err := s.applySessionLocked(b, sess, val, onlyOwner, synced)
	if err != nil {
		return false, fmt.Errorf("pebblestore: %s: %w", what, err)
	}
	if !applied || !synced {
		return applied, nil
	}
	// The fsync is waited for outside s.sessMu, so that the sessions of
	// many clients connecting at once share one: held across it, every
	// CONNECT and SUBSCRIBE waited for its own, one after the other, and a
	// node took 19,900 connections at 1,171 a second.
	if err := b.SyncWait(); err != nil {
		return false, fmt.Errorf("pebblestore: %s: sync: %w", what, err)
	}
	return true, nil
}

// applySessionLocked reads the stored session, and unless onlyOwner finds
// another owner, writes sess (encoded: val) and its expiry index entry
// into b and applies it, without waiting for the fsync if synced. Holding
// s.sessMu from the read to the apply deletes the expiry entry the
// session has, not an older one.
func (s *Store) applySessionLocked(b *pebble.Batch, sess inbox.Session, val []byte, onlyOwner, synced bool) (bool, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	cur, ok, err := s.sessionLocked(sess.ID)
	if err != nil {
		return false, err
	}
	if onlyOwner && (!ok || cur.Owner != sess.Owner) {
		return false, nil
	}
	if ok && cur.Expires > 0 {
		if err := b.Delete(sessExpKey(cur.Expires, cur.ID), nil); err != nil {
			return false, fmt.Errorf("batch: %w", err)
		}
	}
	if sess.Expires > 0 {
		if err := b.Set(sessExpKey(sess.Expires, sess.ID), nil, nil); err != nil {
			return false, fmt.Errorf("batch: %w", err)
		}
	}
	if err := b.Set(sessionKey(sess.ID), val, nil); err != nil {
		return false, fmt.Errorf("batch: %w", err)
	}
	apply, opts := s.db.Apply, pebble.NoSync
	if synced {
		apply, opts = s.db.ApplyNoSyncWait, pebble.Sync
	}
	if err := apply(b, opts); err != nil {
		return false, fmt.Errorf("apply: %w", err)
	}
	return true, nil
}

// sessionLocked reads one session. s.sessMu or the lifetime gate must be held.
func (s *Store) sessionLocked(id string) (inbox.Session, bool, error) {
	val, closer, err := s.db.Get(sessionKey(id))
	if errors.Is(err, pebble.ErrNotFound) {
		return inbox.Session{}, false, nil
	}
	if err != nil {
		return inbox.Session{}, false, fmt.Errorf("read session %q: %w", id, err)
	}
	defer closer.Close()
	sess, err := inbox.DecodeSession(val)
	if err != nil {
		return inbox.Session{}, false, fmt.Errorf("%w: session %q: %w", errCorrupt, id, err)
	}
	return sess, true, nil
}

// Session implements inbox.Sessions.
func (s *Store) Session(ctx context.Context, id string) (inbox.Session, bool, error) {
	if err := ctx.Err(); err != nil {
		return inbox.Session{}, false, fmt.Errorf("pebblestore: session: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return inbox.Session{}, false, fmt.Errorf("pebblestore: session: %w", err)
	}
	defer s.life.Exit()
	sess, ok, err := s.sessionLocked(id)
	if err != nil {
		return inbox.Session{}, false, fmt.Errorf("pebblestore: %w", err)
	}
	return sess, ok, nil
}

// Sessions implements inbox.Sessions.
func (s *Store) Sessions(ctx context.Context) ([]inbox.Session, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: sessions: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: sessions: %w", err)
	}
	defer s.life.Exit()
	var out []inbox.Session
	err := s.scanPrefix(prefixSession, func(k, v []byte) error {
		sess, err := inbox.DecodeSession(v)
		if err != nil {
			return fmt.Errorf("%w: session %q: %w", errCorrupt, k[1:], err)
		}
		out = append(out, sess)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: sessions: %w", err)
	}
	return out, nil
}

// scanPrefix calls fn with every key and value under the one-byte prefix p.
// The slices are valid only during the call.
func (s *Store) scanPrefix(p byte, fn func(k, v []byte) error) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if err := fn(it.Key(), it.Value()); err != nil {
			return errors.Join(err, it.Close())
		}
	}
	return it.Close()
}

// DeleteSession implements inbox.Sessions; the delete is synced.
func (s *Store) DeleteSession(ctx context.Context, id, owner string) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("pebblestore: delete session: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return false, fmt.Errorf("pebblestore: delete session: %w", err)
	}
	defer s.life.Exit()
	b := s.db.NewBatch()
	defer b.Close()
	deleted, err := s.applySessionDelete(b, id, owner)
	if err != nil || !deleted {
		return false, err
	}
	// Outside s.sessMu, as in writeSession: many disconnects share a fsync.
	if err := b.SyncWait(); err != nil {
		return false, fmt.Errorf("pebblestore: delete session: sync: %w", err)
	}
	return true, nil
}

// applySessionDelete deletes session id, unless owner is set and another
// owner holds it, and applies b without waiting for the fsync.
func (s *Store) applySessionDelete(b *pebble.Batch, id, owner string) (bool, error) {
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	cur, ok, err := s.sessionLocked(id)
	if err != nil || !ok || (owner != "" && cur.Owner != owner) {
		return false, err
	}
	if err := deleteSession(b, cur); err != nil {
		return false, fmt.Errorf("pebblestore: delete session: %w", err)
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return false, fmt.Errorf("pebblestore: delete session: apply: %w", err)
	}
	return true, nil
}

// deleteSession writes into b the deletes of session cur and of its
// expiry index entry.
func deleteSession(b *pebble.Batch, cur inbox.Session) error {
	if err := b.Delete(sessionKey(cur.ID), nil); err != nil {
		return err
	}
	if cur.Expires > 0 {
		return b.Delete(sessExpKey(cur.Expires, cur.ID), nil)
	}
	return nil
}

// ExpireSessions implements inbox.Sessions. The deletes are not synced: a
// crash may bring an expired session back until the next sweep.
func (s *Store) ExpireSessions(ctx context.Context, now time.Time) ([]string, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: expire sessions: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: expire sessions: %w", err)
	}
	defer s.life.Exit()
	s.sessMu.Lock()
	defer s.sessMu.Unlock()
	var ids []string
	upper := binary.BigEndian.AppendUint64([]byte{prefixSessExp}, uint64(now.UnixMilli())+1)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixSessExp}, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: expire sessions: %w", err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) > 9 {
			ids = append(ids, string(k[9:]))
		}
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("pebblestore: expire sessions: %w", err)
	}
	var gone []string
	for _, id := range ids {
		cur, ok, err := s.sessionLocked(id)
		if err != nil {
			return gone, fmt.Errorf("pebblestore: expire sessions: %w", err)
		}
		if !ok || !cur.Expired(now) {
			continue // the index entry outlived a rewrite; writeSession removes those
		}
		if err := s.expireSessionLocked(cur); err != nil {
			return gone, fmt.Errorf("pebblestore: expire sessions: %w", err)
		}
		gone = append(gone, id)
	}
	return gone, nil
}

func (s *Store) expireSessionLocked(cur inbox.Session) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := deleteSession(b, cur); err != nil {
		return err
	}
	return b.Commit(pebble.NoSync)
}

// PutRetained implements inbox.Retained; the write is synced.
func (s *Store) PutRetained(ctx context.Context, topic string, msg []byte) error {
	return s.retainedWrite(ctx, topic, msg, true)
}

// DeleteRetained implements inbox.Retained; the delete is synced.
func (s *Store) DeleteRetained(ctx context.Context, topic string) error {
	return s.retainedWrite(ctx, topic, nil, false)
}

func (s *Store) retainedWrite(ctx context.Context, topic string, msg []byte, set bool) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: retained %q: %w", topic, err)
	}
	if topic == "" {
		return errors.New("pebblestore: retained: empty topic")
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: retained %q: %w", topic, err)
	}
	defer s.life.Exit()
	var err error
	if set {
		err = s.db.Set(retainedKey(topic), msg, pebble.Sync)
	} else {
		err = s.db.Delete(retainedKey(topic), pebble.Sync)
	}
	if err != nil {
		return fmt.Errorf("pebblestore: retained %q: %w", topic, err)
	}
	return nil
}

// RetainedMessages implements inbox.Retained.
func (s *Store) RetainedMessages(ctx context.Context) (map[string][]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: retained messages: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: retained messages: %w", err)
	}
	defer s.life.Exit()
	out := make(map[string][]byte)
	err := s.scanPrefix(prefixRetained, func(k, v []byte) error {
		out[string(k[1:])] = append([]byte(nil), v...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pebblestore: retained messages: %w", err)
	}
	return out, nil
}
