package main

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// scale: the dm-max workload (closed loop, same -users, -senders and
// -duration) three times, side by side:
//
//   - embedded-1: one inboxmq node on the embedded store (Pebble);
//   - redis-1: one node with store: redis;
//   - redis-2: two nodes (node_id 1 and 2) on the same Redis and prefix,
//     users split between them, every message sent to a user on the
//     other node than its sender's.
//
// Each Redis run gets a fresh redis-server started by the harness
// (internal/redistest) with appendonly yes and appendfsync always: Redis
// fsyncs before it replies, which matches inboxmq's embedded store, which
// fsyncs before each PUBACK. Around the measured window (from the first
// publish until every acknowledged message has arrived) the harness reads
// INFO commandstats and the CPU time of redis-server (/proc/PID/stat).

// scaleConfigs are the runs of the scale scenario, in order.
var scaleConfigs = []struct {
	name  string // key in the JSON line and column of the table
	title string
	redis bool
	nodes int
}{
	{"embedded-1", "1 node, embedded", false, 1},
	{"redis-1", "1 node, Redis", true, 1},
	{"redis-2", "2 nodes, Redis", true, 2},
}

// redisPrefix is the key prefix the nodes share.
const redisPrefix = "inboxbench:"

// scale runs every configuration and returns one Result holding them as
// Runs. A configuration that fails is reported in the joined error and
// left out; the others still run.
func (b *bench) scale() (*Result, error) {
	o := b.o
	r := &Result{Scenario: "scale", Broker: Inboxmq, Params: map[string]any{
		"users": o.Users, "senders": o.Senders, "duration": o.Duration.String(), "msg_size": o.MsgSize,
		"redis": "appendonly yes, appendfsync always"}}
	var errs []error
	for _, c := range scaleConfigs {
		busy0, own0, start := machineBusy(), ownCPU(), time.Now()
		sub, err := b.scaleRun(c.redis, c.nodes)
		if sub != nil {
			sub.Scenario, sub.Broker = c.name, Inboxmq
			sub.Params["config"] = c.title
			brokerCPU, _ := sub.Get("cpu_s")
			redisCPU, _ := sub.Get("redis_cpu_s")
			if acked, _ := sub.Get("acked"); acked > 0 {
				sub.add("total_cpu_us_per_msg", "brokers + Redis CPU per message", "µs", "lower", (brokerCPU+redisCPU)*1e6/acked)
			}
			b.noteCompetition(sub, busy0, own0, time.Since(start))
			r.Runs = append(r.Runs, sub)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			fmt.Fprintf(b.log, "inboxbench: scale %s: %v\n", c.name, err)
		}
	}
	// The correctness counts of all runs, summed, so that the targets and
	// the tests see them; then the throughput ratios.
	for _, key := range []string{"acked", "lost", "duplicates", "out_of_order", "other", "publish_errors"} {
		var sum float64
		found := false
		for _, sub := range r.Runs {
			if v, ok := sub.Get(key); ok {
				sum, found = sum+v, true
			}
		}
		if found {
			r.add(key, key+" (all runs)", "", "", sum)
		}
	}
	ratio := func(key, label, a, b string) {
		ra, rb := r.Run(a), r.Run(b)
		if ra == nil || rb == nil {
			return
		}
		va, _ := ra.Get("throughput")
		vb, _ := rb.Get("throughput")
		if vb > 0 {
			r.add(key, label, "", "higher", va/vb)
		}
	}
	ratio("redis1_vs_embedded", "throughput redis-1 / embedded-1", "redis-1", "embedded-1")
	ratio("redis2_vs_redis1", "throughput redis-2 / redis-1", "redis-2", "redis-1")
	if len(r.Runs) == 0 {
		return nil, errors.Join(errs...)
	}
	return r, errors.Join(errs...)
}

// scaleRun starts Redis when asked and nodes inboxmq processes, runs
// dm-max on them, and stops everything.
func (b *bench) scaleRun(withRedis bool, nodes int) (r *Result, err error) {
	var srv *redistest.Server
	extra := func(int) string { return "" }
	if withRedis {
		dir, derr := os.MkdirTemp("", "inboxbench-redis-")
		if derr != nil {
			return nil, fmt.Errorf("temp dir: %w", derr)
		}
		defer func() {
			if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = rerr
			}
		}()
		if srv, err = redistest.Launch(dir, redistest.Config{AOF: true}); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, srv.Kill()) }()
		extra = func(node int) string {
			return fmt.Sprintf("store: redis\nnode_id: %d\nredis:\n  addresses: [%q]\n  prefix: %q\n", node, srv.Addr, redisPrefix)
		}
	}
	secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	t, err := startTarget(Inboxmq, b.o, secret, extra(1))
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := t.Stop(); serr != nil {
			fmt.Fprintf(b.log, "inboxbench: scale: %v\n", serr)
		}
		if err != nil && t.Log() != "" {
			err = fmt.Errorf("%w\nbroker output:\n%s", err, clip(t.Log()))
		}
	}()
	peer := b.o
	peer.Pprof = "" // -pprof's address is the first node's; peers get free ports
	for n := 2; n <= nodes; n++ {
		p, err := startTarget(Inboxmq, peer, secret, extra(n))
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", n, err)
		}
		t.peers = append(t.peers, p)
	}
	if nodes > 1 {
		t.nodeOf = splitNodes(b.o.Users, b.o.Senders, nodes)
	}
	if srv != nil {
		if t.redis, err = newRedisProbe(srv.Addr); err != nil {
			return nil, err
		}
	}
	r, err = b.dm(t, false)
	if r != nil && nodes > 1 {
		users, senders := make([]int, nodes), make([]int, nodes)
		for i := range b.o.Users {
			users[t.Node(i)]++
		}
		for j := range b.o.Senders {
			senders[t.Node(j*b.o.Users/b.o.Senders)]++
		}
		r.Params["users_per_node"] = joinInts(users)
		r.Params["senders_per_node"] = joinInts(senders)
		r.Params["recipients"] = "on the other node"
	}
	return r, err
}

// splitNodes spreads users over nodes: the senders (user j*users/senders
// for sender j) round robin, the other users by i^(i>>1), which also
// mixes the MQTT 3.1.1 (even) and MQTT 5 (odd) users on every node.
func splitNodes(users, senders, nodes int) func(int) int {
	node := make([]int, users)
	for i := range node {
		node[i] = (i ^ i>>1) % nodes
	}
	for j := range senders {
		node[j*users/senders] = j % nodes
	}
	return func(i int) int { return node[i] }
}

func joinInts(v []int) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, "/")
}

// redisProbe reads a Redis server's command counts and CPU time.
type redisProbe struct {
	addr string
	pid  int
}

// redisSample is what a probe read at one moment.
type redisSample struct {
	calls    map[string]int64 // command (lower case, "config|get" for subcommands) -> calls
	cpu      time.Duration
	sysCPU   time.Duration // of cpu, in the kernel: sockets, and the AOF's writes and fsyncs
	rewrites int64         // AOF rewrites so far
}

func newRedisProbe(addr string) (*redisProbe, error) {
	info, err := redistest.Do(addr, 5*time.Second, "INFO", "server")
	if err != nil {
		return nil, fmt.Errorf("redis INFO server: %w", err)
	}
	pid, err := strconv.Atoi(infoField(info, "process_id"))
	if err != nil {
		return nil, fmt.Errorf("redis process_id: %w", err)
	}
	return &redisProbe{addr: addr, pid: pid}, nil
}

// infoField is the value of key in an INFO reply, "" when absent.
func infoField(info, key string) string {
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimRight(line, "\r\n"), key+":"); ok {
			return v
		}
	}
	return ""
}

func (p *redisProbe) sample() (redisSample, error) {
	s := redisSample{calls: map[string]int64{}}
	stats, err := redistest.Do(p.addr, 5*time.Second, "INFO", "commandstats")
	if err != nil {
		return s, fmt.Errorf("redis INFO commandstats: %w", err)
	}
	// cmdstat_evalsha:calls=123,usec=...,usec_per_call=...,rejected_calls=0,failed_calls=0
	for line := range strings.Lines(stats) {
		name, rest, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd {
			continue
		}
		calls, _, _ := strings.Cut(strings.TrimPrefix(rest, "calls="), ",")
		n, err := strconv.ParseInt(calls, 10, 64)
		if err != nil {
			return s, fmt.Errorf("redis commandstats %q: %w", line, err)
		}
		s.calls[name] = n
	}
	persistence, err := redistest.Do(p.addr, 5*time.Second, "INFO", "persistence")
	if err != nil {
		return s, fmt.Errorf("redis INFO persistence: %w", err)
	}
	s.rewrites, _ = strconv.ParseInt(infoField(persistence, "aof_rewrites"), 10, 64)
	user, sys, err := procCPUSplit(p.pid)
	s.cpu, s.sysCPU = user+sys, sys
	return s, err
}

// addRedis adds the Redis figures of the window between a and b:
// commands per delivered message in all and for the top 5, and Redis CPU.
func addRedis(r *Result, a, b redisSample, delivered int64) {
	diff := map[string]int64{}
	var total int64
	for name, n := range b.calls {
		if name == "info" { // the probe's own
			continue
		}
		if d := n - a.calls[name]; d > 0 {
			diff[name] = d
			total += d
		}
	}
	cpu := b.cpu - a.cpu
	r.Params["redis_calls"] = diff // every command, in the JSON line
	r.add("redis_cmds", "Redis commands", "", "", float64(total))
	if delivered > 0 {
		per := float64(delivered)
		r.add("redis_cmds_per_msg", "Redis commands per message", "", "lower", float64(total)/per)
		// Redis counts the commands a Lua script runs as well as the
		// script call; the calls are what the nodes send.
		scripts := diff["evalsha"] + diff["eval"] + diff["evalsha_ro"] + diff["eval_ro"] + diff["fcall"] + diff["fcall_ro"]
		r.add("redis_scripts_per_msg", "  of which script calls (EVAL*, FCALL*)", "", "", float64(scripts)/per)
		names := slices.SortedFunc(maps.Keys(diff), func(x, y string) int {
			return cmp.Or(cmp.Compare(diff[y], diff[x]), cmp.Compare(x, y))
		})
		for _, name := range names[:min(5, len(names))] {
			r.add("redis_per_msg_"+name, "  "+strings.ToUpper(name)+" per message", "", "", float64(diff[name])/per)
		}
	}
	r.add("redis_cpu_s", "Redis CPU", "s", "lower", cpu.Seconds())
	if delivered > 0 {
		r.add("redis_cpu_us_per_msg", "Redis CPU per message", "µs", "lower", float64(cpu.Microseconds())/float64(delivered))
		sys := b.sysCPU - a.sysCPU
		r.add("redis_sys_cpu_us_per_msg", "  of which in the kernel", "µs", "", float64(sys.Microseconds())/float64(delivered))
	}
	if n := b.rewrites - a.rewrites; n > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("Redis rewrote its AOF %d time(s) during the window (a fork; auto-aof-rewrite at 64 MB)", n))
	}
}

// Run is the sub-run named name of a scale result, nil when absent.
func (r *Result) Run(name string) *Result {
	for _, sub := range r.Runs {
		if sub.Scenario == name {
			return sub
		}
	}
	return nil
}
