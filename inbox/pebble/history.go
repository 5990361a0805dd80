package pebblestore

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Thread implements inbox.History. It walks the thread's index entries
// back from before and reads each message by Seq. A limit <= 0 reads
// nothing.
func (s *Store) Thread(ctx context.Context, uid, thread string, before uint64, limit int) ([]inbox.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: thread %s/%s: %w", uid, thread, err)
	}
	if err := checkUID(uid); err != nil {
		return nil, fmt.Errorf("pebblestore: thread: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: thread %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	// No message is in thread "", nor in one that Append would refuse.
	if limit <= 0 || before == 1 || thread == "" || strings.IndexByte(thread, sep) >= 0 {
		return nil, nil
	}
	it, err := s.newInboxIter(uid)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: thread %s/%s: %w", uid, thread, err)
	}
	out, err := readThread(it, uid, thread, before, limit)
	if cerr := it.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: thread %s/%s: %w", uid, thread, err)
	}
	return out, nil
}

// readThread reads, through it, up to limit messages of uid's thread with
// Seq < before (0: all), newest first.
func readThread(it *pebble.Iterator, uid, thread string, before uint64, limit int) ([]inbox.Message, error) {
	prefix := appendIndexThread(nil, uid, thread)
	var end []byte
	if before == 0 {
		end = appendIndexThreadEnd(nil, uid, thread)
	} else {
		end = appendIndexKey(nil, uid, thread, before)
	}
	// First the Seqs, then the messages: both through it, so from one
	// consistent view of the index and the messages.
	seqs := make([]uint64, 0, min(limit, 64))
	for ok := it.SeekLT(end); ok && len(seqs) < limit && bytes.HasPrefix(it.Key(), prefix); ok = it.Prev() {
		if len(it.Key()) != len(prefix)+8 {
			return nil, fmt.Errorf("malformed thread index key %q", it.Key())
		}
		seqs = append(seqs, binary.BigEndian.Uint64(it.Key()[len(prefix):]))
	}
	if err := it.Error(); err != nil {
		return nil, err
	}
	out := make([]inbox.Message, len(seqs))
	var key []byte
	for i, seq := range seqs {
		if err := readMessage(it, uid, seq, &out[i], &key); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readMessage reads message seq of uid, named by the thread index, into m.
// It builds the key in *buf, which it grows for the next call.
func readMessage(it *pebble.Iterator, uid string, seq uint64, m *inbox.Message, buf *[]byte) error {
	key := appendMsgKey((*buf)[:0], uid, seq)
	*buf = key
	if !it.SeekGE(key) || !bytes.Equal(it.Key(), key) {
		if err := it.Error(); err != nil {
			return err
		}
		return fmt.Errorf("%w: thread index names seq %d, which is not held", errCorrupt, seq)
	}
	*m = inbox.Message{UID: uid, Seq: seq}
	if err := decodeMessage(it.Value(), m); err != nil {
		return fmt.Errorf("seq %d: %w", seq, err)
	}
	return nil
}

// newInboxIter returns an iterator over uid's messages, read marks and
// thread index (and whatever sorts between them, which callers skip by
// seeking), so that one call reads them all from one consistent view.
func (s *Store) newInboxIter(uid string) (*pebble.Iterator, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: appendMsgKey(nil, uid, 0),
		UpperBound: appendIndexEnd(nil, uid),
	})
	if err != nil {
		return nil, fmt.Errorf("iterator: %w", err)
	}
	return it, nil
}

// Threads implements inbox.History. The index is ordered by thread name,
// not by age, so a page costs a seek per thread of the inbox (to find each
// thread's newest Seq), plus, for the threads of the page only, a read of
// that message and a step per unread message.
func (s *Store) Threads(ctx context.Context, uid string, before uint64, limit int) ([]inbox.ThreadSummary, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("pebblestore: threads %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return nil, fmt.Errorf("pebblestore: threads: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("pebblestore: threads %s: %w", uid, err)
	}
	defer s.life.Exit()
	it, err := s.newInboxIter(uid)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: threads %s: %w", uid, err)
	}
	out, err := readThreads(it, uid, before, limit)
	if cerr := it.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: threads %s: %w", uid, err)
	}
	return out, nil
}

// readThreads reads, through it, the summaries of uid's threads whose
// newest Seq is below before (0: all), newest first, at most limit
// (<= 0: all).
func readThreads(it *pebble.Iterator, uid string, before uint64, limit int) ([]inbox.ThreadSummary, error) {
	lasts, err := scanLasts(it, uid)
	if err != nil {
		return nil, err
	}
	if before > 0 {
		lasts = slices.DeleteFunc(lasts, func(st threadStat) bool { return st.last >= before })
	}
	// Seqs increase with time in an inbox, so the newest thread has the
	// highest last Seq; no two threads share one.
	slices.SortFunc(lasts, func(a, b threadStat) int { return cmp.Compare(b.last, a.last) })
	if limit > 0 && len(lasts) > limit {
		lasts = lasts[:limit]
	}
	marks, err := readMarks(it, uid)
	if err != nil {
		return nil, err
	}
	out := make([]inbox.ThreadSummary, len(lasts))
	var key []byte
	for i, st := range lasts {
		mark := marks[st.thread]
		unread, err := countUnread(it, uid, st.thread, mark, nil)
		if err != nil {
			return nil, err
		}
		out[i] = inbox.ThreadSummary{Thread: st.thread, Unread: unread, ReadMark: mark}
		if err := readMessage(it, uid, st.last, &out[i].Last, &key); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// scanLasts returns every thread of uid's index with its newest Seq, in
// index (name) order: two seeks per thread.
func scanLasts(it *pebble.Iterator, uid string) ([]threadStat, error) {
	prefix := appendIndexUID(nil, uid)
	var stats []threadStat
	var end []byte
	ok := it.SeekGE(prefix)
	for ok && bytes.HasPrefix(it.Key(), prefix) {
		th, _, err := parseIndexKey(it.Key(), len(prefix))
		if err != nil {
			return nil, err
		}
		st := threadStat{thread: string(th)}
		end = appendIndexThreadEnd(end[:0], uid, st.thread)
		if !it.SeekLT(end) {
			return nil, errors.Join(fmt.Errorf("thread %q vanished from the index", st.thread), it.Error())
		}
		if _, st.last, err = parseIndexKey(it.Key(), len(prefix)); err != nil {
			return nil, err
		}
		stats = append(stats, st)
		ok = it.SeekGE(end)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("thread index: %w", err)
	}
	return stats, nil
}

// Unread implements inbox.History. Like Threads it costs a seek per thread
// plus a step per unread message, and decodes no message. The maps are
// never nil.
func (s *Store) Unread(ctx context.Context, uid string) (inbox.Unread, error) {
	if err := ctx.Err(); err != nil {
		return inbox.Unread{}, fmt.Errorf("pebblestore: unread %s: %w", uid, err)
	}
	if err := checkUID(uid); err != nil {
		return inbox.Unread{}, fmt.Errorf("pebblestore: unread: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return inbox.Unread{}, fmt.Errorf("pebblestore: unread %s: %w", uid, err)
	}
	defer s.life.Exit()
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: appendMarkUID(nil, uid),
		UpperBound: appendIndexEnd(nil, uid),
	})
	if err != nil {
		return inbox.Unread{}, fmt.Errorf("pebblestore: unread %s: %w", uid, err)
	}
	u := inbox.Unread{Threads: make(map[string]int), NoticeTypes: make(map[int]int)}
	marks, err := readMarks(it, uid)
	var stats []threadStat
	if err == nil {
		stats, err = scanThreads(it, uid, marks, u.NoticeTypes)
	}
	if cerr := it.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return inbox.Unread{}, fmt.Errorf("pebblestore: unread %s: %w", uid, err)
	}
	for _, st := range stats {
		if st.unread > 0 {
			u.Threads[st.thread] = st.unread
			u.Total += st.unread
		}
	}
	return u, nil
}

// readMarks reads all of uid's read marks through it.
func readMarks(it *pebble.Iterator, uid string) (map[string]uint64, error) {
	prefix := appendMarkUID(nil, uid)
	marks := make(map[string]uint64)
	for ok := it.SeekGE(prefix); ok && bytes.HasPrefix(it.Key(), prefix); ok = it.Next() {
		v, err := decodeUint("read mark", it.Value())
		if err != nil {
			return nil, err
		}
		marks[string(it.Key()[len(prefix):])] = v
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read marks: %w", err)
	}
	return marks, nil
}

// threadStat is what the thread index says about one thread of an inbox.
type threadStat struct {
	thread string
	last   uint64 // the newest Seq held (scanLasts only)
	unread int
}

// scanThreads walks uid's thread index through it, one thread at a time,
// counting each thread's unread entries (countUnread). Unread notices are
// tallied by MsgType into types unless it is nil.
func scanThreads(it *pebble.Iterator, uid string, marks map[string]uint64, types map[int]int) ([]threadStat, error) {
	prefix := appendIndexUID(nil, uid)
	var stats []threadStat
	var end []byte
	ok := it.SeekGE(prefix)
	for ok && bytes.HasPrefix(it.Key(), prefix) {
		th, _, err := parseIndexKey(it.Key(), len(prefix))
		if err != nil {
			return nil, err
		}
		st := threadStat{thread: string(th)}
		if st.unread, err = countUnread(it, uid, st.thread, marks[st.thread], types); err != nil {
			return nil, err
		}
		stats = append(stats, st)
		end = appendIndexThreadEnd(end[:0], uid, st.thread)
		ok = it.SeekGE(end)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("thread index: %w", err)
	}
	return stats, nil
}

// countUnread counts the incoming entries of uid's thread above mark: a
// seek past the mark, then a step per unread entry. Unread notices are
// tallied by MsgType into types unless it is nil.
func countUnread(it *pebble.Iterator, uid, thread string, mark uint64, types map[int]int) (int, error) {
	if mark == math.MaxUint64 {
		return 0, nil
	}
	end := appendIndexThreadEnd(nil, uid, thread)
	n := 0
	for ok := it.SeekGE(appendIndexKey(nil, uid, thread, mark+1)); ok && bytes.Compare(it.Key(), end) < 0; ok = it.Next() {
		kind, msgType, err := decodeIndexValue(it.Value())
		if err != nil {
			return 0, err
		}
		if !(inbox.Message{Kind: kind}).Incoming() {
			continue
		}
		n++
		if types != nil && thread == inbox.NoticeThread {
			types[msgType]++
		}
	}
	if err := it.Error(); err != nil {
		return 0, fmt.Errorf("thread index: %w", err)
	}
	return n, nil
}

// MarkRead implements inbox.History. Like SetCursor, the write is not
// synced: after a crash a thread may count as unread again.
func (s *Store) MarkRead(ctx context.Context, uid, thread string, seq uint64) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("pebblestore: mark read %s/%s: %w", uid, thread, err)
	}
	if err := checkUID(uid); err != nil {
		return fmt.Errorf("pebblestore: mark read: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("pebblestore: mark read %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	if err := s.raise("read mark", markKey(uid, thread), seq); err != nil {
		return fmt.Errorf("pebblestore: mark read %s/%s: %w", uid, thread, err)
	}
	return nil
}

// ReadMark implements inbox.History.
func (s *Store) ReadMark(ctx context.Context, uid, thread string) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("pebblestore: read mark %s/%s: %w", uid, thread, err)
	}
	if err := checkUID(uid); err != nil {
		return 0, fmt.Errorf("pebblestore: read mark: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return 0, fmt.Errorf("pebblestore: read mark %s/%s: %w", uid, thread, err)
	}
	defer s.life.Exit()
	seq, _, err := s.position("read mark", markKey(uid, thread))
	if err != nil {
		return 0, fmt.Errorf("pebblestore: %s/%s: %w", uid, thread, err)
	}
	return seq, nil
}

// Delete implements inbox.History. Like Append it returns after its batch
// is fsync'd, sharing the fsync with concurrent appends: a deleted message
// does not come back after a crash.
func (s *Store) Delete(ctx context.Context, uid string, seq uint64) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, fmt.Errorf("pebblestore: delete %s/%d: %w", uid, seq, err)
	}
	if err := checkUID(uid); err != nil {
		return false, fmt.Errorf("pebblestore: delete: %w", err)
	}
	if err := s.life.Enter(); err != nil {
		return false, fmt.Errorf("pebblestore: delete %s/%d: %w", uid, seq, err)
	}
	defer s.life.Exit()

	b := s.db.NewBatch()
	ok, err := s.applyDelete(b, uid, seq)
	if err != nil || !ok {
		return false, errors.Join(err, b.Close())
	}
	if err := b.SyncWait(); err != nil {
		return false, errors.Join(fmt.Errorf("pebblestore: delete %s/%d: sync: %w", uid, seq, err), b.Close())
	}
	if err := b.Close(); err != nil {
		return false, fmt.Errorf("pebblestore: delete %s/%d: %w", uid, seq, err)
	}
	return true, nil
}

// applyDelete writes the delete of message seq of uid, its index entry and
// uid's new head into b and applies b without waiting for its fsync. ok is
// false, and b untouched, when uid holds no message seq.
func (s *Store) applyDelete(b *pebble.Batch, uid string, seq uint64) (ok bool, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wrap := func(err error) error { return fmt.Errorf("pebblestore: delete %s/%d: %w", uid, seq, err) }

	h, err := s.headLocked(uid)
	if err != nil {
		return false, wrap(err)
	}
	if h.held == 0 || seq < h.first || seq > h.last {
		return false, nil
	}
	key := appendMsgKey(nil, uid, seq)
	val, closer, err := s.db.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, wrap(err)
	}
	err = deleteMessage(b, uid, key, val)
	if cerr := closer.Close(); cerr != nil && err == nil {
		err = cerr
	}
	if err != nil {
		return false, wrap(err)
	}

	h.held--
	if h.held == 0 {
		h.first = h.last + 1
	} else if seq == h.first {
		if h.first, err = s.nextHeld(uid, seq); err != nil {
			return false, wrap(err)
		}
	}
	if err := b.Set(headKey(uid), encodeHead(h), nil); err != nil {
		return false, wrap(fmt.Errorf("batch: %w", err))
	}
	if err := s.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return false, wrap(fmt.Errorf("apply: %w", err))
	}
	s.heads[uid] = h
	return true, nil
}

// nextHeld returns the lowest Seq above seq that uid holds. s.mu must be
// held, and uid must hold one.
func (s *Store) nextHeld(uid string, seq uint64) (uint64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{
		LowerBound: appendMsgKey(nil, uid, seq+1),
		UpperBound: appendMsgEnd(nil, uid),
	})
	if err != nil {
		return 0, fmt.Errorf("iterator: %w", err)
	}
	if !it.First() {
		return 0, errors.Join(fmt.Errorf("%w: head says messages are held above %d, found none", errCorrupt, seq), it.Close())
	}
	_, next, err := parseMsgKey(it.Key())
	return next, errors.Join(err, it.Close())
}
