package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/lifetime"
)

// Options configure a Store.
type Options struct {
	// Client reaches Redis: a *redis.Client (single instance or Sentinel
	// via redis.NewFailoverClient) or a *redis.ClusterClient. The caller
	// owns it: Store.Close does not close it. Reads must go to masters
	// (no ReadOnly or RouteByLatency) for a reader to see its own appends.
	// Set ContextTimeoutEnabled so that context deadlines cut network waits
	// short; without it they bound only the time between round trips. Set
	// MaxRetries to -1: go-redis would retry a call whose reply was lost,
	// and report only the last attempt's error, so a refused retry would
	// hide that the first attempt may have been stored (see classify).
	Client redis.UniversalClient
	// Prefix starts every key, e.g. "inboxmq:", so that stores can share
	// a Redis. It must not contain '{' or '}'.
	Prefix string
	// Inbox holds the retention limits and the node id. Every node sharing
	// a Prefix must have its own NodeID.
	Inbox inbox.Options
}

// lockTTL bounds how long a crashed appender can block an inbox. An
// Append holds its locks for one round trip, so this is far above any
// healthy hold time; a holder stalled longer fails its Append.
const lockTTL = 3 * time.Second

// Store is an inbox.Store in Redis. Open one with Open.
type Store struct {
	rdb redis.UniversalClient
	k   keys
	// cluster selects the append protocol: a Cluster spreads inboxes over
	// slots that no one script can write (doc.go).
	cluster bool
	opts    inbox.Options
	now     func() time.Time // time.Now; tests replace it

	// life lets Close wait for the methods in progress: each holds it
	// shared for its whole run, Close exclusively.
	life lifetime.Gate

	// idMu guards ids and lastID: the generator is re-seeded past any id
	// another node wrote, so that ids grow in every inbox.
	idMu   sync.Mutex
	ids    *inbox.IDGen
	lastID uint64 // the last id this store issued

	// tokens name append locks: tokenBase is random per store, so tokens
	// of different stores (nodes) never collide.
	tokenBase string
	tokenSeq  atomic.Uint64
}

var _ inbox.Store = (*Store)(nil)

// Open checks the configuration and the key layout under opts.Prefix and
// returns a store. It costs one round trip. Scripts are loaded lazily.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if opts.Client == nil {
		return nil, errors.New("redisstore: open: no client")
	}
	if err := checkPrefix(opts.Prefix); err != nil {
		return nil, fmt.Errorf("redisstore: open: %w", err)
	}
	if opts.Inbox.NodeID < 0 || opts.Inbox.NodeID > 1023 {
		return nil, fmt.Errorf("redisstore: open: node id %d out of range 0..1023", opts.Inbox.NodeID)
	}
	if opts.Inbox.MaxPerInbox < 0 {
		return nil, fmt.Errorf("redisstore: open: negative MaxPerInbox %d", opts.Inbox.MaxPerInbox)
	}
	var rnd [8]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return nil, fmt.Errorf("redisstore: open: %w", err)
	}
	s := &Store{
		rdb:       opts.Client,
		k:         keys{prefix: opts.Prefix},
		opts:      opts.Inbox,
		now:       time.Now,
		ids:       inbox.NewIDGen(opts.Inbox.NodeID, 0),
		tokenBase: hex.EncodeToString(rnd[:]),
	}
	_, s.cluster = opts.Client.(*redis.ClusterClient)
	if err := s.checkLayout(ctx); err != nil {
		return nil, fmt.Errorf("redisstore: open: %w", err)
	}
	return s, nil
}

// checkLayout writes the layout version under a new prefix, or checks it.
func (s *Store) checkLayout(ctx context.Context) error {
	var get *redis.StringCmd
	_, err := s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		p.SetNX(ctx, s.k.layout(), layoutVersion, 0)
		get = p.Get(ctx, s.k.layout())
		return nil
	})
	if err != nil {
		return fmt.Errorf("layout version: %w", err)
	}
	if v := get.Val(); v != layoutVersion {
		return fmt.Errorf("layout version %q under prefix %q, this build reads %q", v, s.k.prefix, layoutVersion)
	}
	return nil
}

// Close waits for the methods in progress and makes later calls return an
// error wrapping inbox.ErrClosed. It does not close Options.Client, which
// the caller created and may share. Redis holds no state for a Store, so
// nothing is flushed: what Append acknowledged is already in Redis.
func (s *Store) Close() error {
	if err := s.life.Close(func() error { return nil }); err != nil {
		return fmt.Errorf("redisstore: close: %w", err)
	}
	return nil
}

// Read implements inbox.Store with one ZRANGE BYSCORE. A limit <= 0 reads
// nothing.
func (s *Store) Read(ctx context.Context, uid string, from uint64, limit int) ([]inbox.Message, error) {
	if err := s.begin(ctx, uid); err != nil {
		return nil, fmt.Errorf("redisstore: read %s: %w", uid, err)
	}
	defer s.life.Exit()
	if limit <= 0 {
		return nil, nil
	}
	members, err := s.rdb.ZRangeArgs(ctx, redis.ZRangeArgs{
		Key:     s.k.base(uid) + sufLog,
		Start:   strconv.FormatUint(max(from, 1), 10),
		Stop:    "+inf",
		ByScore: true,
		Count:   int64(limit),
	}).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: read %s: %w", uid, err)
	}
	out, err := decodeAll(uid, members)
	if err != nil {
		return nil, fmt.Errorf("redisstore: read %s: %w", uid, err)
	}
	return out, nil
}

// Bounds implements inbox.Store with one script call.
func (s *Store) Bounds(ctx context.Context, uid string) (first, last uint64, err error) {
	if err := s.begin(ctx, uid); err != nil {
		return 0, 0, fmt.Errorf("redisstore: bounds %s: %w", uid, err)
	}
	defer s.life.Exit()
	b := s.k.base(uid)
	res, err := scriptBounds.Run(ctx, s.rdb, []string{b + sufMeta, b + sufLog}).StringSlice()
	if err == nil && len(res) != 2 {
		err = fmt.Errorf("bounds script returned %d values", len(res))
	}
	if err == nil {
		if last, err = strconv.ParseUint(res[0], 10, 64); err == nil {
			first, err = strconv.ParseUint(res[1], 10, 64)
		}
	}
	if err != nil {
		return 0, 0, fmt.Errorf("redisstore: bounds %s: %w", uid, err)
	}
	return first, last, nil
}

// Cursor implements inbox.Store with one round trip: the cursor is in the
// global cursor index (layout 1 kept it in the inbox's "c" hash, which is
// read too: the higher value wins).
func (s *Store) Cursor(ctx context.Context, uid, device string) (seq uint64, ok bool, err error) {
	if err := s.begin(ctx, uid); err != nil {
		return 0, false, fmt.Errorf("redisstore: cursor %s: %w", uid, err)
	}
	defer s.life.Exit()
	var score *redis.FloatCmd
	var old *redis.StringCmd
	// Each command keeps its own error: redis.Nil only says it is absent.
	_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		score = p.ZScore(ctx, s.k.cursors(), cursorMember(uid, device))
		old = p.HGet(ctx, s.k.base(uid)+sufCursors, device)
		return nil
	})
	for _, err := range []error{score.Err(), old.Err()} {
		if err != nil && !errors.Is(err, redis.Nil) {
			return 0, false, fmt.Errorf("redisstore: cursor %s: %w", uid, err)
		}
	}
	if v, err := score.Result(); err == nil {
		seq, ok = uint64(v), true
	}
	if str, err := old.Result(); err == nil {
		v, err := strconv.ParseUint(str, 10, 64)
		if err != nil {
			return 0, false, fmt.Errorf("redisstore: cursor %s: layout 1 cursor %q: %w", uid, str, err)
		}
		seq, ok = max(seq, v), true
	}
	return seq, ok, nil
}

// SetCursor implements inbox.Store with one ZADD GT: forward only, in one
// command. It is as durable as any Redis write.
func (s *Store) SetCursor(ctx context.Context, uid, device string, seq uint64) error {
	if err := s.WriteAcks(ctx, []inbox.CursorPos{{UID: uid, Device: device, Seq: seq}}, nil); err != nil {
		return fmt.Errorf("redisstore: set cursor %s: %w", uid, err)
	}
	return nil
}

var _ inbox.AckWriter = (*Store)(nil)

// WriteAcks implements inbox.AckWriter in one round trip: one ZADD GT of
// the global cursor index per 1000 cursors (Seqs are scores, exact below
// 2^53, which no inbox reaches) and one ZREM of the push schedule per 1000
// Seqs acknowledged (see pushes.go).
func (s *Store) WriteAcks(ctx context.Context, cursors []inbox.CursorPos, acked []inbox.PushRange) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("redisstore: write acks: %w", err)
	}
	members := make([]redis.Z, len(cursors))
	for i, c := range cursors {
		if err := checkUID(c.UID); err != nil {
			return fmt.Errorf("redisstore: write acks: %w", err)
		}
		if c.Seq > maxScore {
			return fmt.Errorf("redisstore: write acks: %s: seq %d above 2^53", c.UID, c.Seq)
		}
		members[i] = redis.Z{Score: float64(c.Seq), Member: cursorMember(c.UID, c.Device)}
	}
	pushes, err := pushMembers(acked)
	if err != nil {
		return fmt.Errorf("redisstore: write acks: %w", err)
	}
	if len(members) == 0 && len(pushes) == 0 {
		return nil
	}
	if err := s.life.Enter(); err != nil {
		return fmt.Errorf("redisstore: write acks: %w", err)
	}
	defer s.life.Exit()
	_, err = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
		for len(members) > 0 {
			n := min(len(members), 1000)
			p.ZAddArgs(ctx, s.k.cursors(), redis.ZAddArgs{GT: true, Members: members[:n]})
			members = members[n:]
		}
		for len(pushes) > 0 {
			n := min(len(pushes), 1000)
			p.ZRem(ctx, s.k.pushes(), pushes[:n]...)
			pushes = pushes[n:]
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: write acks: %w", err)
	}
	return nil
}

// maxScore is the highest integer a ZSET score holds exactly.
const maxScore = 1 << 53

// begin checks what every per-inbox method checks first and enters the
// store; on success the caller must call s.life.RUnlock.
func (s *Store) begin(ctx context.Context, uid string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := checkUID(uid); err != nil {
		return err
	}
	return s.life.Enter()
}

// hgetUint reads a decimal field; ok is false when it is absent.
func (s *Store) hgetUint(ctx context.Context, key, field string) (v uint64, ok bool, err error) {
	str, err := s.rdb.HGet(ctx, key, field).Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	v, err = strconv.ParseUint(str, 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("field %q: %w", field, err)
	}
	return v, true, nil
}

// decodeAll decodes members of uid's log.
func decodeAll(uid string, members []string) ([]inbox.Message, error) {
	if len(members) == 0 {
		return nil, nil
	}
	out := make([]inbox.Message, len(members))
	for i, mem := range members {
		out[i].UID = uid
		if err := decodeMember(mem, &out[i]); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// call is one script call in a pipeline.
type call struct {
	script *redis.Script
	keys   []string
	args   []any
	cmd    *redis.Cmd
}

// evalAll runs calls, and the commands extra adds, in one pipeline: one
// round trip (on a Cluster, one per master involved, in parallel). Calls
// that Redis refused with NOSCRIPT did not run; they run again with EVAL,
// which also caches them, in a second round trip. Errors, of a call or of
// the whole pipeline, are in each call's cmd and extra's commands.
func (s *Store) evalAll(ctx context.Context, calls []*call, extra func(p redis.Pipeliner)) {
	run := func(eval bool, calls []*call) {
		// Pipelined repeats the first command error; every command keeps
		// its own, which is what the callers look at.
		_, _ = s.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, c := range calls {
				if eval {
					c.cmd = c.script.Eval(ctx, p, c.keys, c.args...)
				} else {
					c.cmd = c.script.EvalSha(ctx, p, c.keys, c.args...)
				}
			}
			if extra != nil && !eval {
				extra(p)
			}
			return nil
		})
	}
	run(false, calls)
	var again []*call
	for _, c := range calls {
		if redis.HasErrorPrefix(c.cmd.Err(), "NOSCRIPT") {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		run(true, again)
	}
}
