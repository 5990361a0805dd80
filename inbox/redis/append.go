package redisstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"strings"
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

// Append implements inbox.Store: Submit without a key or pushes.
func (s *Store) Append(ctx context.Context, msgs []inbox.Message) ([]inbox.Message, error) {
	r, err := s.Submit(ctx, inbox.Request{Msgs: msgs})
	return r.Msgs, err
}

// Submit implements inbox.Store; see doc.go for the protocol. On a single
// Redis (or a Sentinel-managed one) it is one script, one round trip, and
// atomic. On a Cluster it takes the append locks first (two round trips).
// Entries of one call for the same uid get consecutive Seqs and share the
// id, like all entries of one call.
func (s *Store) Submit(ctx context.Context, req inbox.Request) (inbox.Receipt, error) {
	if err := ctx.Err(); err != nil {
		return inbox.Receipt{}, fmt.Errorf("redisstore: append: %w: %w", inbox.ErrNotStored, err)
	}
	if len(req.Msgs) == 0 {
		return inbox.Receipt{}, nil
	}
	if len(req.Key) > inbox.MaxRequestKey {
		return inbox.Receipt{}, fmt.Errorf("redisstore: append: %w: %w", inbox.ErrNotStored, inbox.ErrBadRequestKey)
	}
	// An Append has one or two inboxes, so a slice beats a map.
	var buf [2]target
	targets := buf[:0]
	for i := range req.Msgs {
		uid := req.Msgs[i].UID
		if err := checkUID(uid); err != nil {
			return inbox.Receipt{}, fmt.Errorf("redisstore: append: %w: %w", inbox.ErrNotStored, err)
		}
		j := slices.IndexFunc(targets, func(t target) bool { return t.uid == uid })
		if j < 0 {
			targets = append(targets, target{uid: uid, base: s.k.base(uid)})
			j = len(targets) - 1
		}
		targets[j].idx = append(targets[j].idx, i)
	}
	if err := s.life.Enter(); err != nil {
		return inbox.Receipt{}, fmt.Errorf("redisstore: append: %w: %w", inbox.ErrNotStored, err)
	}
	defer s.life.Exit()

	var r inbox.Receipt
	var err error
	if s.cluster {
		r, err = s.submitLocked(ctx, req, targets)
	} else {
		r, err = s.submitAtomic(ctx, req, targets)
	}
	if err != nil {
		return r, fmt.Errorf("redisstore: append: %w", err)
	}
	return r, nil
}

// request is what both protocols derive from a Request and its targets.
type request struct {
	req     inbox.Request
	targets []target
	out     []inbox.Message
	token   string
	sum     string // hex of req.Sum
	now     time.Time
	cut     int64 // the oldest request record time still in the window (ms)
}

func (s *Store) newRequest(req inbox.Request, targets []target) *request {
	return &request{
		req:     req,
		targets: targets,
		out:     slices.Clone(req.Msgs),
		token:   s.tokenBase + "-" + strconv.FormatUint(s.tokenSeq.Add(1), 10),
		sum:     hex.EncodeToString(req.Sum[:]),
	}
}

// entryArgs sets the id and time of target t's entries and returns their
// script arguments (append_entries); push says whether the script puts
// them on the push schedule.
func (r *request) entryArgs(t target, body *[]byte, id uint64, push bool) []any {
	idStr := strconv.FormatUint(id, 10)
	ms := r.now.UnixMilli()
	args := make([]any, 0, 4*len(t.idx))
	for _, j := range t.idx {
		m := &r.out[j]
		m.ID, m.Time = idStr, ms
		*body = appendBody((*body)[:0], id, m)
		due := ""
		if push && r.req.PushAfter > 0 && inbox.NeedsPush(*m) {
			due = strconv.FormatInt(ms+r.req.PushAfter.Milliseconds(), 10)
		}
		args = append(args, string(*body), m.Thread(), unreadSuffix(m), due)
	}
	return args
}

// setSeqs gives the entries of target t consecutive Seqs from first.
func (r *request) setSeqs(t target, first uint64) {
	for _, j := range t.idx {
		r.out[j].Seq = first
		first++
	}
}

// record is the request record of the stored entries: "sum time id
// seq,seq...", the Seqs in target order.
func (r *request) record() string {
	var seqs []string
	for _, t := range r.targets {
		for _, j := range t.idx {
			seqs = append(seqs, strconv.FormatUint(r.out[j].Seq, 10))
		}
	}
	return r.sum + " " + strconv.FormatInt(r.out[0].Time, 10) + " " + r.out[0].ID + " " + strings.Join(seqs, ",")
}

// duplicate fills the entries from a request record found stored.
func (r *request) duplicate(rec string) (inbox.Receipt, error) {
	f := strings.Fields(rec)
	if len(f) != 4 {
		return inbox.Receipt{}, fmt.Errorf("malformed request record %q", rec)
	}
	ms, err1 := strconv.ParseInt(f[1], 10, 64)
	seqs := strings.Split(f[3], ",")
	if err1 != nil || !inbox.ValidID(f[2]) || len(seqs) != len(r.out) {
		return inbox.Receipt{}, fmt.Errorf("malformed request record %q", rec)
	}
	k := 0
	for _, t := range r.targets {
		for _, j := range t.idx {
			seq, err := strconv.ParseUint(seqs[k], 10, 64)
			if err != nil {
				return inbox.Receipt{}, fmt.Errorf("malformed request record %q", rec)
			}
			r.out[j].ID, r.out[j].Time, r.out[j].Seq = f[2], ms, seq
			k++
		}
	}
	return inbox.Receipt{Msgs: r.out, Duplicate: true}, nil
}

// submitAtomic runs submitScript: one round trip in the common case. It
// tries again with a higher id when another node's clock ran ahead, and
// after a backoff when a node of the lock protocol holds an inbox.
func (s *Store) submitAtomic(ctx context.Context, req inbox.Request, targets []target) (inbox.Receipt, error) {
	r := s.newRequest(req, targets)
	n := len(targets)
	keys := make([]string, 0, 4*n+3)
	for _, t := range targets {
		keys = append(keys, t.base+sufMeta, t.base+sufLock, t.base+sufLog, t.base+sufThreads)
	}
	keys = append(keys, s.k.oldest(), s.k.pushes(), targets[0].base+sufRequests, targets[0].base+sufBlocks)
	wait := minLockWait
	var floor uint64
	var body []byte
	for {
		r.now = s.now()
		window, perInbox := s.opts.Dedupe()
		r.cut = r.now.Add(-window).UnixMilli()
		id := s.nextID(r.now, floor)
		args := []any{r.token, id, r.now.UnixMilli(), s.opts.MaxPerInbox, n,
			req.Key, r.sum, r.cut, perInbox, window.Milliseconds(), req.RefuseIfBlocked}
		for _, t := range targets {
			args = append(args, t.uid, len(t.idx))
			args = append(args, r.entryArgs(t, &body, id, true)...)
		}
		res, err := scriptSubmit.Run(ctx, s.rdb, keys, args...).Slice()
		if err != nil {
			return inbox.Receipt{}, s.classify(err)
		}
		if len(res) < 2 {
			return inbox.Receipt{}, fmt.Errorf("submit script returned %d values", len(res))
		}
		switch res[0] {
		case "blocked":
			return inbox.Receipt{}, fmt.Errorf("%w: %w", inbox.ErrNotStored, inbox.ErrBlocked)
		case "ok":
			if len(res) != 1+2*n {
				return inbox.Receipt{}, fmt.Errorf("submit script returned %d values", len(res))
			}
			var drops []drop
			for i, t := range targets {
				first, _ := res[1+2*i].(int64)
				r.setSeqs(t, uint64(first))
				if d, _ := res[2+2*i].(int64); d > 0 {
					drops = append(drops, drop{t.uid, int(d)})
				}
			}
			s.reportDrops(drops, "overflow")
			return inbox.Receipt{Msgs: r.out}, nil
		case "dup":
			rec, _ := res[1].(string)
			return r.duplicate(rec)
		case "floor":
			last, _ := res[1].(string)
			if floor, err = strconv.ParseUint(last, 10, 64); err != nil {
				return inbox.Receipt{}, fmt.Errorf("submit script: last id %q: %w", last, err)
			}
			continue
		case "busy":
			held, _ := res[1].(int64)
			if err := sleepJittered(ctx, min(wait, max(time.Duration(held)*time.Millisecond, minLockWait))); err != nil {
				return inbox.Receipt{}, fmt.Errorf("%w: waiting for an append lock: %w", inbox.ErrNotStored, err)
			}
			wait = min(2*wait, maxLockWait)
			continue
		}
		return inbox.Receipt{}, fmt.Errorf("submit script returned %v", res[0])
	}
}

// submitLocked is the Cluster protocol (doc.go): the locks, then one
// append script per inbox. The first inbox's script is the commit point:
// it holds the request record. The push schedule, in its own slot, is
// written in the same round trip but not atomically with the entries.
func (s *Store) submitLocked(ctx context.Context, req inbox.Request, targets []target) (inbox.Receipt, error) {
	r := s.newRequest(req, targets)
	r.now = s.now()
	window, perInbox := s.opts.Dedupe()
	r.cut = r.now.Add(-window).UnixMilli()
	floor, heads, rec, err := s.lockAll(ctx, r)
	if errors.Is(err, inbox.ErrBlocked) {
		return inbox.Receipt{}, err // wraps ErrNotStored already
	}
	if err != nil {
		return inbox.Receipt{}, fmt.Errorf("%w: %w", inbox.ErrNotStored, err)
	}
	if rec != "" {
		if err := s.unlockAll(ctx, targets, r.token); err != nil {
			return inbox.Receipt{}, err
		}
		return r.duplicate(rec)
	}

	// The locks are held: no other appender can write these inboxes until
	// the append scripts below release them, so an id above every last id
	// read stays above them, and their Seqs follow the heads read.
	r.now = s.now()
	id := s.nextID(r.now, floor)
	for i, t := range targets {
		r.setSeqs(t, heads[i]+1)
	}
	calls := make([]*call, len(targets))
	members := make([]redis.Z, len(targets))
	var body []byte
	for i, t := range targets {
		args := []any{r.token, id, r.now.UnixMilli(), s.opts.MaxPerInbox, len(t.idx), "", "", 0, 0, 0}
		entries := r.entryArgs(t, &body, id, false)
		if i == 0 && req.Key != "" {
			args[5], args[6], args[7], args[8], args[9] = req.Key, r.record(), r.cut, perInbox, window.Milliseconds()
		}
		calls[i] = &call{
			script: scriptAppend,
			keys:   []string{t.base + sufMeta, t.base + sufLock, t.base + sufLog, t.base + sufThreads, t.base + sufRequests},
			args:   append(args, entries...),
		}
		members[i] = redis.Z{Score: float64(r.now.UnixMilli()), Member: t.uid}
	}
	var pushes []redis.Z
	for _, e := range inbox.PushEntries(r.out, req.PushAfter) {
		pushes = append(pushes, redis.Z{Score: float64(e.Due.UnixMilli()), Member: strconv.FormatUint(e.Seq, 10) + ":" + e.UID})
	}
	var index, pushCmd *redis.IntCmd
	s.evalAll(ctx, calls, func(p redis.Pipeliner) {
		// LT adds a missing uid and lowers an entry, never raises it: the
		// score stays at or below the inbox's oldest message.
		index = p.ZAddArgs(ctx, s.k.oldest(), redis.ZAddArgs{LT: true, Members: members})
		if len(pushes) > 0 {
			pushCmd = p.ZAdd(ctx, s.k.pushes(), pushes...)
		}
	})

	var errs []error
	var done []string
	var failed []target // their lock may still be ours if the call never ran
	var drops []drop
	sure := true // every failure certainly wrote nothing
	for i, t := range targets {
		res, err := calls[i].cmd.Int64Slice()
		if err == nil && len(res) != 2 {
			err = fmt.Errorf("append script returned %d values", len(res))
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("inbox %s: %w", t.uid, err))
			failed = append(failed, t)
			sure = sure && errors.Is(s.classify(err), inbox.ErrNotStored)
			continue
		}
		done = append(done, t.uid)
		if first := uint64(res[0]); first != r.out[t.idx[0]].Seq {
			r.setSeqs(t, first) // cannot happen under the lock; trust Redis
		}
		if res[1] > 0 {
			drops = append(drops, drop{t.uid, int(res[1])})
		}
	}
	s.reportDrops(drops, "overflow")
	if err := index.Err(); err != nil {
		errs = append(errs, fmt.Errorf("sweep index: %w", err))
	}
	if pushCmd != nil && pushCmd.Err() != nil {
		errs = append(errs, fmt.Errorf("push schedule: %w", pushCmd.Err()))
	}
	if len(errs) == 0 {
		return inbox.Receipt{Msgs: r.out}, nil
	}
	if err := s.unlockAll(ctx, failed, r.token); err != nil {
		errs = append(errs, err)
	}
	err = errors.Join(errs...)
	switch {
	case len(done) > 0 && done[0] == targets[0].uid:
		// The commit point is written: the request is stored and a resend
		// finds it; what failed is named in the error, and its entries
		// have no Seq.
		for _, t := range failed {
			for _, j := range t.idx {
				r.out[j].Seq = 0
			}
		}
		return inbox.Receipt{Msgs: r.out}, fmt.Errorf("%w: %w", inbox.ErrPartial, err)
	case len(done) == 0 && sure:
		return inbox.Receipt{}, fmt.Errorf("%w: %w", inbox.ErrNotStored, err)
	case len(done) > 0:
		// Inboxes in different Cluster slots are not written atomically.
		return inbox.Receipt{}, fmt.Errorf("%w (entries were stored in %q)", err, done)
	}
	return inbox.Receipt{}, err
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

// lockAll takes the append lock of every target for r.token and returns
// the highest last id among them, each target's highest Seq, and the
// request record when r's request is stored already (the first target's
// lock reads it, and checks its block list for req.RefuseIfBlocked: a
// blocked request releases the locks it took and returns an error
// wrapping inbox.ErrBlocked and inbox.ErrNotStored). When another
// appender holds one, it lets go of those it took and tries again after a
// backoff, until ctx is done: taking them one by one in a fixed order
// would cost a round trip each.
func (s *Store) lockAll(ctx context.Context, r *request) (floor uint64, heads []uint64, rec string, err error) {
	wait := minLockWait
	ttl := lockTTL.Milliseconds()
	targets := r.targets
	calls := make([]*call, len(targets))
	heads = make([]uint64, len(targets))
	for {
		for i, t := range targets {
			key, refuse := "", ""
			if i == 0 {
				key, refuse = r.req.Key, r.req.RefuseIfBlocked
			}
			calls[i] = &call{script: scriptLock, keys: []string{t.base + sufMeta, t.base + sufLock, t.base + sufRequests, t.base + sufBlocks},
				args: []any{r.token, ttl, key, r.sum, r.cut, refuse}}
		}
		s.evalAll(ctx, calls, nil)
		var errs []error
		var held []target
		busy, blocked := false, false
		var pttl time.Duration // the longest a holder may still hold
		floor, rec = 0, ""
		for i, t := range targets {
			l, err := parseLock(calls[i].cmd)
			switch {
			case err != nil:
				errs = append(errs, fmt.Errorf("lock %s: %w", t.uid, err))
			case l.blocked:
				blocked = true
			case l.got:
				held = append(held, t)
				floor = max(floor, l.lastID)
				heads[i] = l.head
				if i == 0 {
					rec = l.record
				}
			default:
				busy = true
				pttl = max(pttl, l.busy)
			}
		}
		if len(errs) == 0 && !busy && !blocked {
			return floor, heads, rec, nil
		}
		// A failed call may have taken its lock before its reply was lost,
		// so release those too: unlock checks the token.
		if len(errs) > 0 {
			held = targets
		}
		if err := s.unlockAll(ctx, held, r.token); err != nil {
			errs = append(errs, err)
		}
		if len(errs) > 0 {
			return 0, nil, "", errors.Join(errs...)
		}
		if blocked {
			return 0, nil, "", fmt.Errorf("%w: %w", inbox.ErrNotStored, inbox.ErrBlocked)
		}
		// Wait about as long as the holder should still need, jittered so
		// that two appenders that each took one of the other's inboxes do
		// not collide again.
		if err := sleepJittered(ctx, min(wait, max(pttl, minLockWait))); err != nil {
			return 0, nil, "", fmt.Errorf("waiting for the append lock: %w", err)
		}
		wait = min(2*wait, maxLockWait)
	}
}

// sleepJittered waits between d/2 and d, or until ctx is done.
func sleepJittered(ctx context.Context, d time.Duration) error {
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lockReply is the reply of scriptLock.
type lockReply struct {
	got     bool
	blocked bool // the first inbox's owner blocked the uid to refuse
	lastID  uint64
	head    uint64        // the highest Seq, when got
	record  string        // the request record, when got and found
	busy    time.Duration // how long the holder may still hold, when not got
}

// parseLock reads the reply of scriptLock.
func parseLock(cmd *redis.Cmd) (lockReply, error) {
	res, err := cmd.Slice()
	if err != nil {
		return lockReply{}, err
	}
	if len(res) != 2 && len(res) != 4 {
		return lockReply{}, fmt.Errorf("lock script returned %d values", len(res))
	}
	l := lockReply{got: res[0] == int64(1), blocked: res[0] == int64(2)}
	if l.blocked {
		return l, nil
	}
	if !l.got {
		v, _ := res[1].(int64)
		l.busy = time.Duration(v) * time.Millisecond
		return l, nil
	}
	if len(res) != 4 {
		return lockReply{}, fmt.Errorf("lock script returned %d values", len(res))
	}
	if v, _ := res[1].(string); v != "" {
		if l.lastID, err = strconv.ParseUint(v, 10, 64); err != nil {
			return lockReply{}, fmt.Errorf("last id: %w", err)
		}
	}
	head, _ := res[2].(string)
	if l.head, err = strconv.ParseUint(head, 10, 64); err != nil {
		return lockReply{}, fmt.Errorf("head: %w", err)
	}
	l.record, _ = res[3].(string)
	return l, nil
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
		calls[i] = &call{script: scriptUnlock, keys: []string{t.base + sufLock, t.base + sufMeta}, args: []any{token}}
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

// classify marks the errors after which Redis certainly holds nothing of
// a call with inbox.ErrNotStored: a refused dial or an exhausted pool (the
// call was never sent), or an error reply. The scripts check everything
// before their first write, and Redis refuses a script before it runs
// (NOSCRIPT, BUSY, LOADING, READONLY, MASTERDOWN) or at its first write
// (OOM). Anything else (a timeout, a connection lost after the write) may
// have been stored. This holds only when the client does not retry
// (Options.Client), as a retry's error hides the first attempt's.
//
// A bare context error (not a network error that wraps one) comes from
// go-redis's pool, which gives up waiting for a connection or a dial when
// the caller's context ends: nothing was sent. Once a command is written,
// a deadline shows as a network timeout instead. A Cluster client also
// sleeps between redirections, where a context error can follow a sent
// command, so there it is not taken as proof.
func (s *Store) classify(err error) error {
	var reply redis.Error
	var op *net.OpError
	switch {
	case errors.As(err, &reply),
		errors.As(err, &op) && op.Op == "dial",
		errors.Is(err, redis.ErrPoolTimeout),
		errors.Is(err, redis.ErrClosed),
		!s.cluster && (err == context.DeadlineExceeded || err == context.Canceled):
		return fmt.Errorf("%w: %w", inbox.ErrNotStored, err)
	}
	return err
}
