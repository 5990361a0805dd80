package cluster

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// What the nodes know of each other, kept in Redis under the prefix:
//
//	P{nodes}:live      ZSET  node id scored by the Unix ms until which it counts as alive
//	P{nodes}:on:<id>   HASH  uid -> the connections node id holds of it (uids with none left out)
//
// The keys share the hash tag {nodes}, so on a Cluster they live in one
// slot and one script reads them all (OnlineEverywhere). Every beat a node
// renews its entry and its hash's expiry, so a node that dies without
// Close drops out of both three beats later; Close removes them at once.
//
// Only GET /api/v1/online reads them. Wakes still go out when no other
// node listens: a node cannot tell without a race that none has just
// subscribed, and a wake skipped wrongly would leave a message undelivered
// until the user's next one.

// Presence timing: beats, how long a node counts as alive after one, and
// how often changed connection counts are written.
const (
	defaultBeat   = 5 * time.Second
	beatsAlive    = 3
	presenceFlush = 200 * time.Millisecond
)

// presence is a node's side of the above.
type presence struct {
	n      *Node
	live   string // P{nodes}:live
	mine   string // P{nodes}:on:<id>
	onBase string // P{nodes}:on:
	beat   time.Duration

	mu      sync.Mutex
	dirty   map[string]struct{} // uids whose count changed; guarded by mu
	written map[string]int      // the counts in Redis; only the presence goroutine touches it
	rewrite bool                // mine was lost (a Redis restart): write every count again
}

func newPresence(n *Node) *presence {
	tag := n.opts.Prefix + "{nodes}:"
	p := &presence{n: n, live: tag + "live", onBase: tag + "on:", beat: n.opts.Beat,
		dirty: make(map[string]struct{}), written: make(map[string]int)}
	if p.beat <= 0 {
		p.beat = defaultBeat
	}
	p.mine = p.onBase + strconv.Itoa(n.opts.NodeID)
	return p
}

// start clears what a previous run under this node id left and registers
// the node: one round trip.
func (p *presence) start(ctx context.Context) error {
	now := time.Now()
	_, err := p.n.opts.Client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.Del(ctx, p.mine)
		p.beatCmds(ctx, pl, now)
		return nil
	})
	if err != nil {
		return fmt.Errorf("cluster: register node %d: %w", p.n.opts.NodeID, err)
	}
	return nil
}

// beatCmds queues the heartbeat: the node's entry, the dead ones out.
func (p *presence) beatCmds(ctx context.Context, pl redis.Pipeliner, now time.Time) *redis.BoolCmd {
	ttl := beatsAlive * p.beat
	pl.ZAdd(ctx, p.live, redis.Z{Score: float64(now.Add(ttl).UnixMilli()), Member: p.n.opts.NodeID})
	pl.ZRemRangeByScore(ctx, p.live, "-inf", "("+strconv.FormatInt(now.UnixMilli(), 10))
	return pl.PExpire(ctx, p.mine, ttl)
}

// changed marks uid's count on this node for writing.
func (p *presence) changed(uid string) {
	p.mu.Lock()
	p.dirty[uid] = struct{}{}
	p.mu.Unlock()
}

// run writes changed counts every presenceFlush and beats every beat,
// until the node closes.
func (p *presence) run() {
	defer p.n.wg.Done()
	flush := time.NewTicker(presenceFlush)
	defer flush.Stop()
	beat := time.NewTicker(p.beat)
	defer beat.Stop()
	for {
		select {
		case <-p.n.done:
			return
		case <-flush.C:
			p.flush()
		case <-beat.C:
			p.heartbeat()
		}
	}
}

func (p *presence) heartbeat() {
	ctx, cancel := context.WithTimeout(context.Background(), p.beat)
	defer cancel()
	var kept *redis.BoolCmd
	_, err := p.n.opts.Client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		kept = p.beatCmds(ctx, pl, time.Now())
		return nil
	})
	if err != nil {
		p.n.opts.Log.Warn("cluster heartbeat failed", "error", err)
		return
	}
	if !kept.Val() && len(p.written) > 0 {
		p.rewrite = true // the hash is gone (Redis restarted or lost it)
	}
}

// flush writes the counts of the uids that changed: one round trip.
func (p *presence) flush() {
	p.mu.Lock()
	uids := slices.Collect(maps.Keys(p.dirty))
	clear(p.dirty)
	p.mu.Unlock()
	if p.n.opts.Online == nil || (len(uids) == 0 && !p.rewrite) {
		return
	}
	if p.rewrite {
		for uid := range p.written {
			uids = append(uids, uid)
		}
	}
	counts := make(map[string]int, len(uids))
	var set []any
	var gone []string
	for _, uid := range uids {
		c := p.n.opts.Online(uid)
		counts[uid] = c
		if c > 0 {
			set = append(set, uid, c)
		} else {
			gone = append(gone, uid)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.beat)
	defer cancel()
	_, err := p.n.opts.Client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		if len(set) > 0 {
			pl.HSet(ctx, p.mine, set...)
		}
		if len(gone) > 0 {
			pl.HDel(ctx, p.mine, gone...)
		}
		pl.PExpire(ctx, p.mine, beatsAlive*p.beat)
		return nil
	})
	if err != nil {
		p.n.opts.Log.Warn("online counts not written; retrying", "uids", len(uids), "error", err)
		p.mu.Lock()
		for _, uid := range uids {
			p.dirty[uid] = struct{}{}
		}
		p.mu.Unlock()
		return
	}
	p.rewrite = false
	for uid, c := range counts {
		if c > 0 {
			p.written[uid] = c
		} else {
			delete(p.written, uid)
		}
	}
}

// stop removes the node from the live set and its counts: one round trip.
func (p *presence) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_, err := p.n.opts.Client.Pipelined(ctx, func(pl redis.Pipeliner) error {
		pl.ZRem(ctx, p.live, p.n.opts.NodeID)
		pl.Del(ctx, p.mine)
		return nil
	})
	if err != nil {
		p.n.opts.Log.Warn("node not unregistered; its counts expire with its beat", "error", err)
	}
}

// onlineScript adds up uid's connections over the live nodes. KEYS: the
// live set. ARGV: now (Unix ms), uid, the prefix of the nodes' hashes.
var onlineScript = redis.NewScript(`-- inboxmq online
local n = 0
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], '+inf')) do
  n = n + tonumber(redis.call('HGET', ARGV[3] .. id, ARGV[2]) or '0')
end
return n
`)

// OnlineEverywhere returns how many connections uid has on all the live
// nodes sharing the prefix: what each wrote at most presenceFlush after a
// change. One round trip.
func (n *Node) OnlineEverywhere(ctx context.Context, uid string) (int, error) {
	p := n.peers
	c, err := onlineScript.Run(ctx, n.opts.Client, []string{p.live}, time.Now().UnixMilli(), uid, p.onBase).Int()
	if err != nil {
		return 0, fmt.Errorf("cluster: online %s: %w", uid, err)
	}
	return c, nil
}

// OnlineChanged tells the node that uid's connection count on it changed
// (Options.Online now says otherwise): it is written within presenceFlush.
func (n *Node) OnlineChanged(uid string) { n.peers.changed(uid) }
