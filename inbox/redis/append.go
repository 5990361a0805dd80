package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
)

// Backoff between attempts to take the append locks when another appender
// holds one: it holds it for about one round trip.
const (
	minLockWait = 100 * time.Microsecond
	maxLockWait = 5 * time.Millisecond
)

// target is one inbox an Append writes.
type target struct {
	uid  string
	base string
	idx  []int // positions of its entries in the Append's msgs
}

// Append implements inbox.Store; see doc.go for the protocol. In the
// common case it costs two round trips: one takes the append lock of every
// inbox involved and reads their last ids, the other appends (one script
// per inbox) and updates the sweep index. It returns after Redis has
// acknowledged both. Entries of one call for the same uid get consecutive
// Seqs and share the id, like all entries of one call.
func (s *Store) Append(ctx context.Context, msgs []inbox.Message) ([]inbox.Message, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("redisstore: append: %w", err)
	}
	if len(msgs) == 0 {
		return nil, nil
	}
	// An Append has one or two inboxes, so a slice beats a map.
	var buf [2]target
	targets := buf[:0]
	for i := range msgs {
		uid := msgs[i].UID
		if err := checkUID(uid); err != nil {
			return nil, fmt.Errorf("redisstore: append: %w", err)
		}
		j := slices.IndexFunc(targets, func(t target) bool { return t.uid == uid })
		if j < 0 {
			targets = append(targets, target{uid: uid, base: s.k.base(uid)})
			j = len(targets) - 1
		}
		targets[j].idx = append(targets[j].idx, i)
	}
	if err := s.life.Enter(); err != nil {
		return nil, fmt.Errorf("redisstore: append: %w", err)
	}
	defer s.life.Exit()

	token := s.tokenBase + "-" + strconv.FormatUint(s.tokenSeq.Add(1), 10)
	floor, err := s.lockAll(ctx, targets, token)
	if err != nil {
		return nil, fmt.Errorf("redisstore: append: %w", err)
	}

	// The locks are held: no other appender can write these inboxes until
	// the append scripts below release them, so an id above every last id
	// read stays above them.
	now := s.now()
	id := s.nextID(now, floor)
	out := slices.Clone(msgs)
	idStr := strconv.FormatUint(id, 10)
	ms := now.UnixMilli()
	msStr := strconv.FormatInt(ms, 10)
	calls := make([]*call, len(targets))
	members := make([]redis.Z, len(targets))
	var body []byte
	for i, t := range targets {
		args := make([]any, 0, 5+3*len(t.idx))
		args = append(args, token, idStr, msStr, s.opts.MaxPerInbox, len(t.idx))
		for _, j := range t.idx {
			m := &out[j]
			m.ID, m.Time = idStr, ms
			body = appendBody(body[:0], id, m)
			args = append(args, string(body), m.Thread(), unreadSuffix(m))
		}
		calls[i] = &call{
			script: scriptAppend,
			keys:   []string{t.base + sufMeta, t.base + sufLock, t.base + sufLog, t.base + sufTimes, t.base + sufThreads},
			args:   args,
		}
		members[i] = redis.Z{Score: float64(ms), Member: t.uid}
	}
	var index *redis.IntCmd
	s.evalAll(ctx, calls, func(p redis.Pipeliner) {
		// LT adds a missing uid and lowers an entry, never raises it: the
		// score stays at or below the inbox's oldest message.
		index = p.ZAddArgs(ctx, s.k.oldest(), redis.ZAddArgs{LT: true, Members: members})
	})

	var errs []error
	var done []string
	var failed []target // their lock may still be ours if the call never ran
	var drops []drop
	for i, t := range targets {
		res, err := calls[i].cmd.Int64Slice()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("append script returned %d values", len(res))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("inbox %s: %w", t.uid, err))
			failed = append(failed, t)
			continue
		}
		done = append(done, t.uid)
		seq := uint64(res[0])
		for _, j := range t.idx {
			out[j].Seq = seq
			seq++
		}
		if res[1] > 0 {
			drops = append(drops, drop{t.uid, int(res[1])})
		}
	}
	s.reportDrops(drops, "overflow")
	if err := index.Err(); err != nil {
		errs = append(errs, fmt.Errorf("sweep index: %w", err))
	}
	if len(errs) > 0 {
		if len(done) > 0 {
			// Inboxes in different Cluster slots are not written atomically.
			errs = append(errs, fmt.Errorf("entries were stored in %q", done))
		}
		if err := s.unlockAll(ctx, failed, token); err != nil {
			errs = append(errs, err)
		}
		return nil, fmt.Errorf("redisstore: append: %w", errors.Join(errs...))
	}
	return out, nil
}

// unreadSuffix is what the append script adds to a message's Seq in its
// thread's unread index: "" for messages that never count as unread, the
// MsgType of a notice, so that Unread can count notices by type.
func unreadSuffix(m *inbox.Message) string {
	switch {
	case !m.Incoming() || m.Thread() == "":
		return ""
	case m.Kind == inbox.KindNotice:
		return ":" + strconv.Itoa(m.MsgType)
	}
	return ":"
}

// lockAll takes the append lock of every target for token and returns the
// highest last id among them. When another appender holds one, it lets go
// of those it took and tries again after a backoff, until ctx is done:
// taking them one by one in a fixed order would cost a round trip each.
func (s *Store) lockAll(ctx context.Context, targets []target, token string) (floor uint64, err error) {
	wait := minLockWait
	ttl := lockTTL.Milliseconds()
	calls := make([]*call, len(targets))
	for {
		for i, t := range targets {
			calls[i] = &call{script: scriptLock, keys: []string{t.base + sufMeta, t.base + sufLock}, args: []any{token, ttl}}
		}
		s.evalAll(ctx, calls, nil)
		var errs []error
		var held []target
		busy := false
		var pttl time.Duration // the longest a holder may still hold
		floor = 0
		for i, t := range targets {
			got, last, left, err := parseLock(calls[i].cmd)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("lock %s: %w", t.uid, err))
			case got:
				held = append(held, t)
				floor = max(floor, last)
			default:
				busy = true
				pttl = max(pttl, left)
			}
		}
		if len(errs) == 0 && !busy {
			return floor, nil
		}
		// A failed call may have taken its lock before its reply was lost,
		// so release those too: unlock checks the token.
		if len(errs) > 0 {
			held = targets
		}
		if err := s.unlockAll(ctx, held, token); err != nil {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return 0, errors.Join(errs...)
		}
		// Wait about as long as the holder should still need, jittered so
		// that two appenders that each took one of the other's inboxes do
		// not collide again.
		d := min(wait, max(pttl, minLockWait))
		d = d/2 + rand.N(d/2+1)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("waiting for the append lock: %w", ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, maxLockWait)
	}
}

// parseLock reads the reply of scriptLock.
func parseLock(cmd *redis.Cmd) (got bool, lastID uint64, busy time.Duration, err error) {
	res, err := cmd.Slice()
	if err != nil {
		return false, 0, 0, err
	}
	if len(res) != 2 {
		return false, 0, 0, fmt.Errorf("lock script returned %d values", len(res))
	}
	switch v := res[1].(type) {
	case string:
		if v != "" {
			if lastID, err = strconv.ParseUint(v, 10, 64); err != nil {
				return false, 0, 0, fmt.Errorf("last id: %w", err)
			}
		}
	case int64:
		busy = time.Duration(v) * time.Millisecond
	}
	return res[0] == int64(1), lastID, busy, nil
}

// unlockAll releases the append locks of targets that token still holds,
// in one round trip.
func (s *Store) unlockAll(ctx context.Context, targets []target, token string) error {
	if len(targets) == 0 {
		return nil
	}
	// A cancelled ctx must not leave the locks to their TTL: the release
	// gets its own short deadline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
	defer cancel()
	calls := make([]*call, len(targets))
	for i, t := range targets {
		calls[i] = &call{script: scriptUnlock, keys: []string{t.base + sufLock}, args: []any{token}}
	}
	s.evalAll(ctx, calls, nil)
	var errs []error
	for i, c := range calls {
		if err := c.cmd.Err(); err != nil {
			errs = append(errs, fmt.Errorf("unlock %s: %w", targets[i].uid, err))
		}
	}
	return errors.Join(errs...)
}

// nextID returns a new id above floor, the highest last id of the inboxes
// an Append locked. Ids of one store increase and carry its node id, so
// ids of stores with distinct node ids never collide; when another node
// wrote a higher id, the generator moves past it.
func (s *Store) nextID(now time.Time, floor uint64) uint64 {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	if floor > s.lastID {
		s.ids = inbox.NewIDGen(s.opts.NodeID, floor)
	}
	id := s.ids.Next(now)
	s.lastID = id
	return id
}

// drop is a number of messages of one inbox dropped by retention.
type drop struct {
	uid string
	n   int
}

func (s *Store) reportDrops(drops []drop, reason string) {
	if s.opts.OnDrop == nil {
		return
	}
	for _, d := range drops {
		s.opts.OnDrop(d.uid, d.n, reason)
	}
}
