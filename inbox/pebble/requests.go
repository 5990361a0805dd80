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
// append's batch, one key each (layout 4):
//
//	"q" end(8) uid 0x00 time(8) key -> sum(32) time(8) id(8) seq(8) per entry
//
// end is the end of the record's age bucket (Unix ms, exclusive): time
// rounded up to a multiple of the bucket width, an eighth of the dedupe
// window and at least a second. Records sort by bucket, then by inbox,
// then by time, which gives three cheap walks:
//   - a sweep (ExpireBefore) drops every bucket that ended before the
//     window with one range delete, however many records it holds;
//   - an inbox's records, oldest first, are a seek per bucket away, so the
//     walk that trims an inbox over DedupePerInbox drops the oldest;
//   - an exact key is built from the record's time, which the store keeps
//     in memory by a hash of the request key (requestStats.keys).
//
// The bucket is found from end, not from the width, so a store reopened
// with another window drops each bucket when it has ended: a shorter
// window forgets the records of the old buckets at most an old width
// early. A record past the window is never a duplicate (findRequestLocked
// checks its time); it waits for the sweep or a trim to leave the disk.
//
// Layout 3 kept each record under "d" uid 0x00 key, with an age index
// "D" uid 0x00 time(8) key beside it: every keyed request wrote two keys
// and, once the window had passed, walked the age index to delete two
// more (BenchmarkSubmit_SteadyState; docs/performance.md). Open rewrites
// those records (upgradeRequests).
const (
	prefixRequest = 'q'
	// Layout 3's prefixes, read only by upgradeRequests.
	prefixRequestV3    = 'd'
	prefixRequestAgeV3 = 'D'
)

// shared marks a hash in requestStats.keys that two of an inbox's records
// within the window have: their times are not known, so a lookup reads
// the inbox's records (searchRequest).
const shared = -1

// requestBucket returns the width of the record buckets for a window.
func requestBucket(window time.Duration) int64 {
	return max(window/8, time.Second).Milliseconds()
}

// bucketEnd is the end of the bucket of a record written at ms.
func (s *Store) bucketEnd(ms int64) int64 {
	return (ms/s.bucketMs + 1) * s.bucketMs
}

func requestBucketPrefix(end int64, uid string) []byte {
	k := make([]byte, 0, 1+8+len(uid)+1+8+40)
	k = append(k, prefixRequest)
	k = binary.BigEndian.AppendUint64(k, uint64(end))
	k = append(k, uid...)
	return append(k, sep)
}

func requestKey(end int64, uid string, ms int64, key string) []byte {
	k := binary.BigEndian.AppendUint64(requestBucketPrefix(end, uid), uint64(ms))
	return append(k, key...)
}

// requestSpaceUntil is the first key of the bucket that ends after end:
// every record in a bucket ending at or before end sorts below it.
func requestSpaceUntil(end int64) []byte {
	return binary.BigEndian.AppendUint64([]byte{prefixRequest}, uint64(end)+1)
}

// parseRequestKey splits a record key. Request keys hold no 0x00 only by
// accident and uids never, so the first 0x00 after end ends the uid.
func parseRequestKey(k []byte) (end int64, uid string, ms int64, key string, err error) {
	if len(k) < 1+8 || k[0] != prefixRequest {
		return 0, "", 0, "", fmt.Errorf("%w: request key %x", errCorrupt, k)
	}
	i := bytes.IndexByte(k[9:], sep) + 9
	if i < 10 || len(k) < i+1+8 {
		return 0, "", 0, "", fmt.Errorf("%w: request key %x", errCorrupt, k)
	}
	return int64(binary.BigEndian.Uint64(k[1:])), string(k[9:i]),
		int64(binary.BigEndian.Uint64(k[i+1:])), string(k[i+9:]), nil
}

type requestRecord struct {
	sum  [32]byte
	ms   int64
	id   uint64
	seqs []uint64
	key  []byte // where it is stored; not part of the value
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

// getRequest reads the record stored under k; ok is false when there is
// none.
func (s *Store) getRequest(k []byte) (r requestRecord, ok bool, err error) {
	v, closer, err := s.db.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return requestRecord{}, false, nil
	}
	if err != nil {
		return requestRecord{}, false, fmt.Errorf("request record: %w", err)
	}
	defer closer.Close()
	r, err = decodeRequest(v)
	r.key = k
	return r, err == nil, err
}

// eachRequest calls fn with the records of uid from the key from on
// (nil: from the first bucket), oldest bucket first and by time within
// one, until fn returns false. It seeks past the other inboxes' records:
// two seeks a bucket, whatever they hold.
func (s *Store) eachRequest(uid string, from []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRequest}, UpperBound: []byte{prefixRequest + 1}})
	if err != nil {
		return fmt.Errorf("request records: %w", err)
	}
	var ok bool
	if from != nil {
		ok = it.SeekGE(from) // not First: it would step over every tombstone below from
	} else {
		ok = it.First()
	}
	for ok {
		end, u, _, _, err := parseRequestKey(it.Key())
		switch {
		case err != nil:
			return errors.Join(err, it.Close())
		case u < uid:
			ok = it.SeekGE(requestBucketPrefix(end, uid))
		case u > uid:
			ok = it.SeekGE(requestSpaceUntil(end))
		default:
			more, err := fn(it.Key(), it.Value())
			if err != nil || !more {
				return errors.Join(err, it.Close())
			}
			ok = it.Next()
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("request records: %w", err)
	}
	return nil
}

// searchRequest finds the record of key among uid's records within the
// window (after cut), reading them all: for a hash two records share.
func (s *Store) searchRequest(uid, key string, cut int64) (r requestRecord, ok bool, err error) {
	err = s.eachRequest(uid, requestSpaceUntil(cut), func(k, v []byte) (bool, error) {
		_, _, ms, kk, err := parseRequestKey(k)
		if err != nil || ms <= cut || kk != key {
			return err == nil, err
		}
		r, err = decodeRequest(v)
		r.key, ok = bytes.Clone(k), err == nil
		return false, err
	})
	return r, ok, err
}

// requestLookup is what findRequestLocked found for a request key.
type requestLookup struct {
	dup bool
	// old is the record of the key within the window that the request
	// replaces (another request's: its sum or entries differ), or nil.
	old *requestRecord
	// collided: the hash of the key is another record's within the
	// window, so recording this one makes the hash shared.
	collided bool
}

// findRequestLocked reports whether req was stored within the window, and
// then gives out the original entries' ID, Time and Seq. s.mu must be
// held.
//
// Almost every request is new, and a point read that misses costs a seek
// through the memtable's skiplist (a tenth of a direct message's CPU in
// a profile), so the inbox's known keys (requestStats.keys) are asked
// first: a key whose hash has no record within the window is not on
// disk, and nothing is read.
func (s *Store) findRequestLocked(out []inbox.Message, req inbox.Request, now time.Time) (requestLookup, error) {
	window, _ := s.opts.Dedupe()
	cut := now.Add(-window).UnixMilli()
	uid := out[0].UID
	st, err := s.requestStatsLocked(uid, cut)
	if err != nil {
		return requestLookup{}, err
	}
	ms, known := st.keys[s.keyHash(req.Key)]
	if !known || (ms != shared && ms <= cut) {
		return requestLookup{}, nil
	}
	var r requestRecord
	var ok bool
	if ms == shared {
		r, ok, err = s.searchRequest(uid, req.Key, cut)
	} else {
		r, ok, err = s.getRequest(requestKey(s.bucketEnd(ms), uid, ms, req.Key))
	}
	switch {
	case err != nil:
		return requestLookup{}, err
	case !ok:
		return requestLookup{collided: ms != shared}, nil
	case r.sum != req.Sum || len(r.seqs) != len(out):
		return requestLookup{old: &r}, nil
	}
	id := strconv.FormatUint(r.id, 10)
	for i := range out {
		out[i].ID, out[i].Time, out[i].Seq = id, r.ms, r.seqs[i]
	}
	return requestLookup{dup: true}, nil
}

// recordRequestLocked writes req's record for the stored entries out into
// b, replacing the record found.old, and trims the inbox to
// DedupePerInbox records, the oldest first. s.mu must be held.
func (s *Store) recordRequestLocked(b *pebble.Batch, out []inbox.Message, req inbox.Request, found requestLookup, now time.Time) error {
	uid := out[0].UID
	window, perInbox := s.opts.Dedupe()
	cut := now.Add(-window).UnixMilli()
	st, err := s.requestStatsLocked(uid, cut)
	if err != nil {
		return err
	}
	if found.old != nil {
		if err := b.Delete(found.old.key, nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
	}
	id, err := strconv.ParseUint(out[0].ID, 10, 64)
	if err != nil {
		return fmt.Errorf("request record: id %q: %w", out[0].ID, err)
	}
	r := requestRecord{sum: req.Sum, ms: out[0].Time, id: id}
	for _, m := range out {
		r.seqs = append(r.seqs, m.Seq)
	}
	key := requestKey(s.bucketEnd(r.ms), uid, r.ms, req.Key)
	if err := b.Set(key, encodeRequest(r), nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	h := s.keyHash(req.Key)
	if found.collided || st.keys[h] == shared {
		st.share(h)
	} else {
		st.keys[h] = r.ms // new, or replacing this key's record or one past the window
	}
	st.from = lowerKey(st.from, key) // a clock gone back writes below it
	st.saw(r.ms)
	s.requests[uid] = st

	if st.oldest <= cut-s.bucketMs {
		// A bucket's worth of the known times is past the window: forget
		// them, so that the inbox's memory follows the window, and before
		// the cap is counted, or they would crowd out records within it.
		// oldest is a lower bound, so this runs at most once a bucket.
		s.pruneRequestsLocked(uid, cut)
	}
	if len(s.requests[uid].keys) > perInbox {
		return s.trimRequestsLocked(b, uid, req.Key, key, perInbox)
	}
	return nil
}

// trimRequestsLocked writes into b the deletes of uid's oldest records,
// until perInbox are left, keeping the record of key, which b writes
// under written. The walk starts at requestStats.from, not at the first
// bucket: the records it dropped before are tombstones until a
// compaction, and a busy inbox (over the cap, one drop per request) would
// step over all of them every time (3 ms a request at 20,000 of them).
// s.mu must be held.
func (s *Store) trimRequestsLocked(b *pebble.Batch, uid, key string, written []byte, perInbox int) error {
	st := s.requests[uid]
	from := st.from
	err := s.eachRequest(uid, st.from, func(k, _ []byte) (bool, error) {
		if len(st.keys) <= perInbox {
			from = bytes.Clone(k) // the oldest record kept
			return false, nil
		}
		_, _, ms, kk, err := parseRequestKey(k)
		if err != nil {
			return false, err
		}
		if kk == key {
			return true, nil // replaced in b, or the record b replaces
		}
		if err := b.Delete(k, nil); err != nil {
			return false, fmt.Errorf("batch: %w", err)
		}
		if h := s.keyHash(kk); st.keys[h] == ms {
			delete(st.keys, h)
		}
		from = nil // past every record: the next walk starts at the first
		return true, nil
	})
	if err != nil {
		return err
	}
	// The record b writes is not among those walked: one written with a
	// clock gone back sorts below the oldest kept.
	// oldest stays as it was: a lower bound of the times left.
	st.from = lowerKey(from, written)
	s.requests[uid] = st
	return nil
}

// pruneRequestsLocked forgets uid's known times past the window (at or
// before cut). A shared hash stands for records whose times are not
// known, so an inbox with one is counted again from disk. s.mu must be
// held.
func (s *Store) pruneRequestsLocked(uid string, cut int64) {
	st := s.requests[uid]
	if st.shared > 0 {
		delete(s.requests, uid) // counted again at the next request
		return
	}
	st.oldest = 0
	for h, ms := range st.keys {
		if ms <= cut {
			delete(st.keys, h)
		} else {
			st.saw(ms)
		}
	}
	s.requests[uid] = st
}

// requestStats is what the store knows of an inbox's request records.
type requestStats struct {
	// keys holds the time of the record of each request key within the
	// window, by a 32-bit hash of the key (Store.keyHash), or shared when
	// two records have the hash. A key whose hash is not here, or is here
	// with a time past the window, has no record within it, and
	// findRequestLocked reads nothing for it. About 20 bytes a record:
	// the window and DedupePerInbox bound them.
	keys   map[uint32]int64
	shared int // hashes marked shared in keys
	// oldest is at or below the time of every record in keys (0: keys is
	// empty), newest the time of the newest: a prune is due when oldest
	// is a bucket past the window, and an inbox whose newest is past it
	// is forgotten by the sweep.
	oldest, newest int64
	// from is at or below the key of every record of the inbox (nil: not
	// known), where trimRequestsLocked's walk starts.
	from []byte
}

// saw moves oldest and newest to take in a record written at ms.
func (st *requestStats) saw(ms int64) {
	if st.oldest == 0 || ms < st.oldest {
		st.oldest = ms
	}
	st.newest = max(st.newest, ms)
}

// share marks h as the hash of two records.
func (st *requestStats) share(h uint32) {
	if st.keys[h] != shared {
		st.keys[h] = shared
		st.shared++
	}
}

// lowerKey is the lower of a bound and a new record's key; a bound not
// known (nil) stays so.
func lowerKey(from, key []byte) []byte {
	if from != nil && bytes.Compare(key, from) < 0 {
		return key
	}
	return from
}

// keyHash is the hash requestStats.keys counts a request key by. The seed
// is the store's own, so a client cannot choose cids that collide.
func (s *Store) keyHash(key string) uint32 {
	return uint32(maphash.String(s.keySeed, key))
}

// requestStatsLocked is what the store knows of uid's records: read, with
// their keys and times, from the inbox's records within the window (after
// cut) on first use (after a restart too, so a resend of a request stored
// before it is found), then kept by every write that adds or drops one.
// s.mu must be held.
func (s *Store) requestStatsLocked(uid string, cut int64) (requestStats, error) {
	if st, ok := s.requests[uid]; ok {
		return st, nil
	}
	st := requestStats{keys: make(map[uint32]int64)}
	err := s.eachRequest(uid, requestSpaceUntil(cut), func(k, _ []byte) (bool, error) {
		end, _, ms, key, err := parseRequestKey(k)
		if err != nil || ms <= cut {
			return err == nil, err
		}
		h := s.keyHash(key)
		if _, dup := st.keys[h]; dup || end != s.bucketEnd(ms) {
			// Two records with the hash, or one written with another
			// bucket width (its key is not built from its time alone).
			st.share(h)
		} else {
			st.keys[h] = ms
		}
		st.saw(ms)
		return true, nil
	})
	if err != nil {
		return requestStats{}, err
	}
	s.requests[uid] = st
	return st, nil
}

// expireRequests drops every bucket of records that ended before the
// dedupe window, with one range delete, so quiet inboxes do not keep
// theirs, and forgets what it knew of the inboxes with no record left
// within the window.
func (s *Store) expireRequests(now time.Time) error {
	window, _ := s.opts.Dedupe()
	cut := now.Add(-window).UnixMilli()
	s.mu.Lock()
	defer s.mu.Unlock()
	// Every bucket ends at a multiple of the width, so a range delete is
	// due only when one more has ended; a bucket of another width (a
	// store reopened with another window) goes with the next one.
	if ended := cut / s.bucketMs * s.bucketMs; ended > s.requestsSwept {
		if err := s.db.DeleteRange([]byte{prefixRequest}, requestSpaceUntil(ended), pebble.NoSync); err != nil {
			return fmt.Errorf("request records: %w", err)
		}
		s.requestsSwept = ended
	}
	for uid, st := range s.requests {
		if st.newest <= cut {
			delete(s.requests, uid)
		}
	}
	return nil
}

// upgradeRequests rewrites the request records of layout 3 ("d" uid 0x00
// key, with the age index "D") as those of layout 4, then deletes the old
// ones and marks the store layout 4, in one synced batch. Records are few
// (the window's), and writing one twice writes the same key, so an upgrade
// interrupted before its last batch is redone from the start.
func (s *Store) upgradeRequests() (err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRequestV3}, UpperBound: []byte{prefixRequestV3 + 1}})
	if err != nil {
		return fmt.Errorf("iterator: %w", err)
	}
	defer func() { err = errors.Join(err, it.Close()) }()
	b := s.db.NewBatch()
	defer func() { err = errors.Join(err, b.Close()) }()
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		i := bytes.IndexByte(k, sep)
		if i < 2 {
			return fmt.Errorf("%w: layout 3 request key %x", errCorrupt, k)
		}
		r, err := decodeRequest(it.Value())
		if err != nil {
			return err
		}
		if err := b.Set(requestKey(s.bucketEnd(r.ms), string(k[1:i]), r.ms, string(k[i+1:])), it.Value(), nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
		if b.Len() >= upgradeBatch {
			if err := b.Commit(pebble.NoSync); err != nil {
				return fmt.Errorf("commit: %w", err)
			}
			b.Reset()
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("iterator: %w", err)
	}
	for _, p := range []byte{prefixRequestV3, prefixRequestAgeV3} {
		if err := b.DeleteRange([]byte{p}, []byte{p + 1}, nil); err != nil {
			return fmt.Errorf("batch: %w", err)
		}
	}
	if err := b.Set(keyVersion, encodeUint(layoutVersion), nil); err != nil {
		return fmt.Errorf("batch: %w", err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
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
