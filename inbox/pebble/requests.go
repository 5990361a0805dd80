package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"strconv"
	"time"

	"github.com/cockroachdb/pebble"

	"github.com/inboxmq/inboxmq/inbox"
)

// Request records make a resent request harmless (inbox.Request.Key). They
// are kept with the inbox of the request's first entry, written in the
// append's batch:
//
//	"d" uid 0x00 key           -> sum(32) time(8, Unix ms) id(8) seq(8) per entry
//	"D" uid 0x00 time(8) key   -> empty: the inbox's records by age
//
// An inbox keeps those of the dedupe window, at most DedupePerInbox of them:
// each append that records one first drops the inbox's records past either
// bound, oldest first, and ExpireBefore drops those of quiet inboxes.
const (
	prefixRequest    = 'd'
	prefixRequestAge = 'D'
)

func requestKey(uid, key string) []byte {
	k := make([]byte, 0, 2+len(uid)+len(key))
	k = append(k, prefixRequest)
	k = append(k, uid...)
	k = append(k, sep)
	return append(k, key...)
}

func requestAgePrefix(uid string) []byte {
	k := make([]byte, 0, 2+len(uid)+8)
	k = append(k, prefixRequestAge)
	k = append(k, uid...)
	return append(k, sep)
}

func requestAgeKey(uid string, ms int64, key string) []byte {
	k := binary.BigEndian.AppendUint64(requestAgePrefix(uid), uint64(ms))
	return append(k, key...)
}

// parseRequestAgeKey splits an age key into uid, time and request key.
// Keys hold no 0x00 only by accident, so the first 0x00 ends the uid.
func parseRequestAgeKey(k []byte) (uid string, ms int64, key string, err error) {
	i := bytes.IndexByte(k, sep)
	if len(k) < 1 || k[0] != prefixRequestAge || i < 2 || len(k) < i+1+8 {
		return "", 0, "", fmt.Errorf("%w: request age key %x", errCorrupt, k)
	}
	return string(k[1:i]), int64(binary.BigEndian.Uint64(k[i+1 : i+9])), string(k[i+9:]), nil
}

type requestRecord struct {
	sum  [32]byte
	ms   int64
	id   uint64
	seqs []uint64
}

func encodeRequest(r requestRecord) []byte {
	v := make([]byte, 0, 32+16+8*len(r.seqs))
	v = append(v, r.sum[:]...)
	v = binary.BigEndian.AppendUint64(v, uint64(r.ms))
	v = binary.BigEndian.AppendUint64(v, r.id)
	for _, s := range r.seqs {
		v = binary.BigEndian.AppendUint64(v, s)
	}
	return v
}

func decodeRequest(v []byte) (requestRecord, error) {
	if len(v) < 48 || (len(v)-48)%8 != 0 {
		return requestRecord{}, fmt.Errorf("%w: request record of %d bytes", errCorrupt, len(v))
	}
	var r requestRecord
	copy(r.sum[:], v)
	r.ms = int64(binary.BigEndian.Uint64(v[32:]))
	r.id = binary.BigEndian.Uint64(v[40:])
	for p := 48; p < len(v); p += 8 {
		r.seqs = append(r.seqs, binary.BigEndian.Uint64(v[p:]))
	}
	return r, nil
}

// getRequest reads the record of key in uid's inbox; ok is false when
// there is none.
func (s *Store) getRequest(uid, key string) (r requestRecord, ok bool, err error) {
	v, closer, err := s.db.Get(requestKey(uid, key))
	if errors.Is(err, pebble.ErrNotFound) {
		return requestRecord{}, false, nil
	}
	if err != nil {
		return requestRecord{}, false, fmt.Errorf("request record: %w", err)
	}
	defer closer.Close()
	r, err = decodeRequest(v)
	return r, err == nil, err
}

// findRequestLocked reports whether req was stored within the window, and
// then gives out the original entries' ID, Time and Seq. It also returns
// the record it found for req.Key, if any (another request's, or one past
// the window), for recordRequestLocked to replace. s.mu must be held.
//
// Almost every request is new, and a point read that misses costs a seek
// through the memtable's skiplist (a tenth of a direct message's CPU in
// a profile), so the inbox's known keys (requestStats.keys) are asked
// first: a key not among them is not on disk, and nothing is read.
func (s *Store) findRequestLocked(out []inbox.Message, req inbox.Request, now time.Time) (dup bool, old *requestRecord, err error) {
	window, _ := s.opts.Dedupe()
	st, err := s.requestStatsLocked(out[0].UID)
	if err != nil {
		return false, nil, err
	}
	if !st.mayHold(s.keyHash(req.Key)) {
		return false, nil, nil
	}
	r, ok, err := s.getRequest(out[0].UID, req.Key)
	if err != nil || !ok {
		return false, nil, err
	}
	if r.sum != req.Sum || r.ms <= now.Add(-window).UnixMilli() || len(r.seqs) != len(out) {
		return false, &r, nil
	}
	id := strconv.FormatUint(r.id, 10)
	for i := range out {
		out[i].ID, out[i].Time, out[i].Seq = id, r.ms, r.seqs[i]
	}
	return true, &r, nil
}

// recordRequestLocked writes req's record for the stored entries out into
// b, replacing old (the record of the same key findRequestLocked found, or
// nil), and drops the inbox's records past the window or the cap. s.mu
// must be held.
func (s *Store) recordRequestLocked(b *pebble.Batch, out []inbox.Message, req inbox.Request, old *requestRecord, now time.Time) error {
	uid := out[0].UID
	st, err := s.requestStatsLocked(uid)
	if err != nil {
		return err
	}
	n := st.n
	if old != nil {
		if err := b.Delete(requestAgeKey(uid, old.ms, req.Key), nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		n--
	}
	id, err := strconv.ParseUint(out[0].ID, 10, 64)
	if err != nil {
		return fmt.Errorf("request record: id %q: %w", out[0].ID, err)
	}
	r := requestRecord{sum: req.Sum, ms: out[0].Time, id: id}
	for _, m := range out {
		r.seqs = append(r.seqs, m.Seq)
	}
	if err := b.Set(requestKey(uid, req.Key), encodeRequest(r), nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	ageKey := requestAgeKey(uid, r.ms, req.Key)
	if err := b.Set(ageKey, nil, nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	n++
	if old == nil {
		st.add(s.keyHash(req.Key)) // a replaced record keeps its key
	}
	window, perInbox := s.opts.Dedupe()
	cut := now.Add(-window).UnixMilli()
	if old == nil && st.oldest > cut && n <= perInbox {
		// Nothing to drop: no scan. Iterating the records would step over
		// the tombstones of every record dropped since the last
		// compaction, on every request.
		st.n, st.oldest = n, min(st.oldest, r.ms)
		st.from = lowerKey(st.from, ageKey)
		s.requests[uid] = st
		return nil
	}

	// The oldest first: past the window, or over the cap. The walk starts
	// at st.from, not at the inbox's first age key: the records dropped
	// before it are tombstones until a compaction, and a busy inbox (over
	// the cap, one drop per request) would step over all of them every
	// time (3 ms a request at 20,000 of them).
	oldest := r.ms
	prefix := requestAgePrefix(uid)
	lower := prefix
	if st.from != nil {
		lower = st.from
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return fmt.Errorf("request records: %w", err)
	}
	st.from = ageKey // unless an older record stays, below
	for ok := it.First(); ok; ok = it.Next() {
		_, ms, key, err := parseRequestAgeKey(it.Key())
		if err != nil {
			return errors.Join(err, it.Close())
		}
		if ms > cut && n <= perInbox {
			if key == req.Key {
				oldest = 0 // the replaced record: the next one's age is not known
			} else {
				oldest = min(oldest, ms)
			}
			st.from = lowerKey(bytes.Clone(it.Key()), ageKey)
			break
		}
		if key == req.Key {
			continue // replaced above
		}
		if err := errors.Join(b.Delete(it.Key(), nil), b.Delete(requestKey(uid, key), nil)); err != nil {
			return errors.Join(fmt.Errorf("batch: %w", err), it.Close())
		}
		st.remove(s.keyHash(key))
		n--
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("request records: %w", err)
	}
	st.n, st.oldest = n, oldest
	s.requests[uid] = st
	return nil
}

// requestStats is what the store knows of an inbox's request records.
type requestStats struct {
	n      int
	oldest int64 // Unix ms of the oldest record; 0: not known
	// from is at or below the age key of every record of the inbox (nil:
	// not known), where recordRequestLocked's walk of the oldest starts.
	from []byte
	// keys counts the inbox's records by a 32-bit hash of their request
	// key (Store.keyHash): every record on disk is counted, so a key whose
	// hash has no count has no record, and findRequestLocked reads
	// nothing for it. Hashes that collide share a count, so a delete
	// never makes another key look absent; a collision only costs a
	// read. About 10 bytes a record: the window bounds them (see
	// docs/performance.md, CPU per direct message).
	keys map[uint32]uint32
}

func (st *requestStats) add(h uint32) {
	if st.keys == nil {
		st.keys = make(map[uint32]uint32)
	}
	st.keys[h]++
}

func (st *requestStats) remove(h uint32) {
	switch st.keys[h] {
	case 0:
	case 1:
		delete(st.keys, h)
	default:
		st.keys[h]--
	}
}

// lowerKey is the lower of a bound and a new record's age key; a bound
// not known (nil) stays so.
func lowerKey(from, key []byte) []byte {
	if from != nil && bytes.Compare(key, from) < 0 {
		return key
	}
	return from
}

// mayHold reports whether a record with a key of hash h may be on disk.
func (st *requestStats) mayHold(h uint32) bool { return st.keys[h] > 0 }

// keyHash is the hash requestStats.keys counts a request key by. The seed
// is the store's own, so a client cannot choose cids that collide.
func (s *Store) keyHash(key string) uint32 {
	return uint32(maphash.String(s.keySeed, key))
}

// requestStatsLocked is what the store knows of uid's records: counted,
// with their keys, by one scan of the inbox's age index on first use
// (after a restart too, so a resend of a request stored before it is
// found), then kept by every write that adds or drops one. s.mu must be
// held.
func (s *Store) requestStatsLocked(uid string) (requestStats, error) {
	if st, ok := s.requests[uid]; ok {
		return st, nil
	}
	prefix := requestAgePrefix(uid)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return requestStats{}, fmt.Errorf("request records: %w", err)
	}
	var st requestStats
	for ok := it.First(); ok; ok = it.Next() {
		_, ms, key, err := parseRequestAgeKey(it.Key())
		if err != nil {
			return requestStats{}, errors.Join(fmt.Errorf("request records: %w", err), it.Close())
		}
		if st.n == 0 {
			st.oldest, st.from = ms, bytes.Clone(it.Key())
		}
		st.add(s.keyHash(key))
		st.n++
	}
	if err := it.Close(); err != nil {
		return requestStats{}, fmt.Errorf("request records: %w", err)
	}
	s.requests[uid] = st
	return st, nil
}

// expireRequests drops the records older than the dedupe window in every
// inbox, so quiet inboxes do not keep theirs. It returns how many it dropped.
func (s *Store) expireRequests(now time.Time) (int, error) {
	window, _ := s.opts.Dedupe()
	cut := now.Add(-window).UnixMilli()
	start := []byte{prefixRequestAge}
	dropped := 0
	for {
		n, next, err := s.expireRequestsFrom(start, cut)
		dropped += n
		if err != nil || next == nil {
			return dropped, err
		}
		start = next
	}
}

// expireRequestsFrom drops expired records from start on, at most a batch
// of them under s.mu, and returns where to go on (nil when done).
func (s *Store) expireRequestsFrom(start []byte, cut int64) (dropped int, next []byte, err error) {
	const perBatch = 1000
	s.mu.Lock()
	defer s.mu.Unlock()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: []byte{prefixRequestAge + 1}})
	if err != nil {
		return 0, nil, fmt.Errorf("request records: %w", err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	ok := it.First()
	for ok && dropped < perBatch {
		uid, ms, key, err := parseRequestAgeKey(it.Key())
		if err != nil {
			return 0, nil, errors.Join(err, it.Close())
		}
		if ms > cut {
			// The rest of this inbox is younger: on to the next inbox.
			ok = it.SeekGE(prefixEnd(requestAgePrefix(uid)))
			continue
		}
		if err := errors.Join(b.Delete(it.Key(), nil), b.Delete(requestKey(uid, key), nil)); err != nil {
			return 0, nil, errors.Join(fmt.Errorf("batch: %w", err), it.Close())
		}
		if st, counted := s.requests[uid]; counted {
			if st.n <= 1 {
				delete(s.requests, uid)
			} else {
				st.remove(s.keyHash(key))
				st.n, st.oldest = st.n-1, 0 // the oldest is gone: not known
				s.requests[uid] = st
			}
		}
		dropped++
		ok = it.Next()
	}
	if ok {
		next = bytes.Clone(it.Key())
	}
	if err := it.Close(); err != nil {
		return 0, nil, fmt.Errorf("request records: %w", err)
	}
	if dropped > 0 {
		if err := b.Commit(pebble.NoSync); err != nil {
			// What s.requests says of the inboxes above may no longer be
			// true: counted again on next use.
			clear(s.requests)
			return 0, nil, fmt.Errorf("request records: %w", err)
		}
	}
	return dropped, next, nil
}

// prefixEnd is the first key after every key starting with prefix, whose
// last byte is below 0xff (here always the 0x00 separator).
func prefixEnd(prefix []byte) []byte {
	end := bytes.Clone(prefix)
	end[len(end)-1]++
	return end
}

// syncWAL makes everything applied so far durable.
func (s *Store) syncWAL() error {
	if err := s.db.LogData(nil, pebble.Sync); err != nil {
		return fmt.Errorf("pebblestore: sync: %w", err)
	}
	return nil
}
