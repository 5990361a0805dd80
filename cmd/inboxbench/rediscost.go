package main

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// rediscost: what one direct message costs Redis, counted rather than
// timed. -messages direct messages (closed loop, -senders of -users, every
// user online on a persistent session and acknowledging) go through one
// node, then through two nodes (every message to a user on the other
// node), each on a fresh redis-server (appendonly yes, appendfsync
// always). The window covers each message's whole life: the request, its
// delivery and acknowledgement to the recipient and of the sender's copy
// (MsgSent), the cursor writes, the wake signals, and the push check:
// push.after is 1 s here, so the harness waits until the push schedule is
// empty (the shipped 2m would put that work after the window). Work the
// node does on a clock (push and event polling, sweeps) is measured in an
// idle window beforehand and subtracted.
//
// Per message it reports: Redis commands counting those scripts run
// (INFO commandstats), by command with their usec; the requests (round
// trips) the nodes sent (inboxmq_redis_requests_total) and the read
// events Redis served (total_reads_processed), which should agree; and
// the CPU time of redis-server (/proc). Then, for -messages/10 more
// messages with MONITOR on, where each command comes from: each script by
// name (its inner commands counted with it) and each plain command with
// the shape of its key.

// redisCostConfigs are the runs, in order.
var redisCostConfigs = []struct {
	name  string
	nodes int
}{
	{"redis-1", 1},
	{"redis-2", 2},
}

// pushKey is the push schedule under the prefix (inbox/redis, pushes.go).
const pushKey = "{$global}:push"

// redisCostExtra is the YAML every node of the scenario gets on top of
// the harness's config.
const redisCostExtra = `store: redis
node_id: %d
redis: {addresses: [%q], prefix: %q}
push: {after: 1s, check_interval: 250ms}
`

// redisCost runs every configuration; a failed one is reported in the
// joined error and left out.
func (b *bench) redisCost() (*Result, error) {
	o := b.o
	r := &Result{Scenario: "rediscost", Broker: Inboxmq, Params: map[string]any{
		"users": o.Users, "senders": o.Senders, "messages": o.costMessages(), "msg_size": o.MsgSize,
		"redis": "appendonly yes, appendfsync always", "push": "after 1s"}}
	var errs []error
	for _, c := range redisCostConfigs {
		sub, err := b.redisCostRun(c.nodes)
		if sub != nil {
			sub.Scenario, sub.Broker = c.name, Inboxmq
			r.Runs = append(r.Runs, sub)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", c.name, err))
			fmt.Fprintf(b.log, "inboxbench: rediscost %s: %v\n", c.name, err)
		}
	}
	for _, key := range []string{"acked", "lost", "duplicates", "out_of_order", "other", "publish_errors"} {
		var sum float64
		for _, sub := range r.Runs {
			v, _ := sub.Get(key)
			sum += v
		}
		r.add(key, key+" (all runs)", "", "", sum)
	}
	if len(r.Runs) == 0 {
		return nil, errors.Join(errs...)
	}
	return r, errors.Join(errs...)
}

// costMessages is -messages, 2,000 when unset.
func (o Options) costMessages() int {
	if o.Messages > 0 {
		return o.Messages
	}
	return 2000
}

// redisCostRun measures one configuration.
func (b *bench) redisCostRun(nodes int) (r *Result, err error) {
	o := b.o
	dir, err := os.MkdirTemp("", "inboxbench-redis-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer func() { err = errors.Join(err, os.RemoveAll(dir)) }()
	srv, err := redistest.Launch(dir, redistest.Config{AOF: true})
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, srv.Kill()) }()
	secret, err := newSecret()
	if err != nil {
		return nil, err
	}
	t, err := startTarget(Inboxmq, o, secret, fmt.Sprintf(redisCostExtra, 1, srv.Addr, redisPrefix))
	if err != nil {
		return nil, err
	}
	defer func() {
		if serr := t.Stop(); serr != nil {
			fmt.Fprintf(b.log, "inboxbench: rediscost: %v\n", serr)
		}
		if err != nil && t.Log() != "" {
			err = fmt.Errorf("%w\nbroker output:\n%s", err, clip(t.Log()))
		}
	}()
	peer := o
	peer.Pprof = ""
	for n := 2; n <= nodes; n++ {
		p, err := startTarget(Inboxmq, peer, secret, fmt.Sprintf(redisCostExtra, n, srv.Addr, redisPrefix))
		if err != nil {
			return nil, fmt.Errorf("node %d: %w", n, err)
		}
		t.peers = append(t.peers, p)
	}
	if nodes > 1 {
		t.nodeOf = splitNodes(o.Users, o.Senders, nodes)
	}
	probe, err := newCostProbe(srv.Addr)
	if err != nil {
		return nil, err
	}
	label := fmt.Sprintf("rediscost %d node(s)", nodes)
	w, err := newCostWorkload(b, t, label)
	if err != nil {
		return nil, err
	}
	defer closeAll(w.clients)

	// Warm up: every user gets a message and a cursor, so that what each
	// inbox pays once (its first append, its first request record) stays
	// out of the window, which shows what every message pays.
	if err := w.send(o.Users, probe); err != nil {
		return nil, err
	}
	// The clock-driven work: per second, with nothing sent.
	const idle = 3 * time.Second
	a, err := w.sample(probe)
	if err != nil {
		return nil, err
	}
	time.Sleep(idle)
	z, err := w.sample(probe)
	if err != nil {
		return nil, err
	}
	background := z.minus(a).scale(1 / idle.Seconds())

	n := o.costMessages()
	a, err = w.sample(probe)
	if err != nil {
		return nil, err
	}
	start := time.Now()
	if err := w.send(n, probe); err != nil {
		return nil, err
	}
	window := time.Since(start)
	z, err = w.sample(probe)
	if err != nil {
		return nil, err
	}
	cost := z.minus(a).minus(background.scale(window.Seconds()))

	r = &Result{Params: map[string]any{"nodes": nodes, "window": window.Round(time.Millisecond).String()}}
	cost.report(r, float64(n), background)

	// Where the commands come from, with MONITOR on (slow: not measured).
	// The script cache is flushed first so that every script shows its
	// source once, then a few messages reload them (every sender's first
	// call finds none), then the pass counts from a mark.
	m := max(n/10, 50)
	mon, err := startMonitor(srv.Addr, redisPrefix)
	if err != nil {
		return r, err
	}
	err = w.send(o.Senders, probe)
	if err == nil {
		err = mon.mark()
	}
	if err == nil {
		err = w.send(m, probe)
	}
	origins, merr := mon.stop()
	if err = errors.Join(err, merr); err != nil {
		return r, err
	}
	reportOrigins(r, origins, float64(m))
	r.addDelivery(w.tr.Stats())
	return r, nil
}

// costWorkload is the connected users of one configuration and what they
// have sent so far.
type costWorkload struct {
	b       *bench
	t       *Target
	label   string
	tr      *Tracker
	ids     []string
	clients []Client
	others  [][]int  // per node, the users on other nodes (several nodes)
	seqs    []uint32 // per sender, its next message number
	sent    int64    // acknowledged publishes so far
}

func newCostWorkload(b *bench, t *Target, label string) (*costWorkload, error) {
	o := b.o
	w := &costWorkload{b: b, t: t, label: label, tr: NewTracker(o.Senders, o.Users, o.MsgSize),
		ids: uids(userBase, o.Users), seqs: make([]uint32, o.Senders)}
	var err error
	if w.clients, err = b.connectUsers(t, label, w.ids, inboxTopic, w.tr.Handler, &w.tr.lost); err != nil {
		return nil, err
	}
	if t.Nodes() > 1 {
		w.others = make([][]int, t.Nodes())
		for i := range o.Users {
			for n := range w.others {
				if t.Node(i) != n {
					w.others[n] = append(w.others[n], i)
				}
			}
		}
	}
	return w, nil
}

// send has the senders publish n messages in closed loop, then waits for
// every delivery and sender's copy, for the push schedule to empty, and
// for Redis to be quiet.
func (w *costWorkload) send(n int, probe *costProbe) error {
	o := w.b.o
	var issued atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var pubErr error
	for j := range o.Senders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			self := j * o.Users / o.Senders
			rnd := rand.New(rand.NewPCG(uint64(o.Seed), uint64(j)<<32|uint64(w.seqs[j])))
			for issued.Add(1) <= int64(n) {
				var to int
				if w.others != nil {
					mine := w.others[w.t.Node(self)]
					to = mine[rnd.IntN(len(mine))]
				} else if to = rnd.IntN(o.Users - 1); to >= self {
					to++
				}
				seq := w.seqs[j]
				w.seqs[j]++
				text := w.tr.Text(j, seq)
				if err := w.clients[self].Publish(w.t.DMTopic(w.ids[to]), request(w.ids[to], text, "c"+strconv.Itoa(int(seq)))); err != nil {
					w.tr.pubErrs.Add(1)
					mu.Lock()
					pubErr = errors.Join(pubErr, err)
					mu.Unlock()
					return
				}
				w.tr.Acked(j, seq, to)
			}
		}()
	}
	wg.Wait()
	if pubErr != nil {
		return pubErr
	}
	w.sent += int64(n)
	if !w.tr.WaitDelivered(w.sent, o.Quiet, 2*time.Minute, nil) {
		return fmt.Errorf("%s: %d of %d messages delivered", w.label, w.tr.Received(), w.sent)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for w.tr.Stats().Copies < w.sent {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %d of %d sender's copies delivered", w.label, w.tr.Stats().Copies, w.sent)
		}
		time.Sleep(20 * time.Millisecond)
	}
	for {
		left, err := probe.do("ZCARD", redisPrefix+pushKey)
		if err != nil {
			return err
		}
		if left == "0" {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: %s push checks still scheduled", w.label, left)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the last cursor writes and wakes
	return nil
}

// costSample is what the nodes and Redis have counted so far.
type costSample struct {
	calls    map[string]float64 // command -> calls (INFO commandstats)
	usec     map[string]float64 // command -> usec
	cpu      float64            // redis-server CPU, µs
	sysCPU   float64            // of cpu, in the kernel (sockets, AOF writes and fsyncs), µs
	reads    float64            // Redis read events, the harness's own taken out
	requests float64            // the nodes' inboxmq_redis_requests_total
	nodeCPU  float64            // the nodes' CPU, µs
}

func (w *costWorkload) sample(p *costProbe) (costSample, error) {
	s := costSample{calls: map[string]float64{}, usec: map[string]float64{}}
	stats, err := p.do("INFO", "commandstats")
	if err != nil {
		return s, err
	}
	for line := range strings.Lines(stats) {
		name, rest, ok := strings.Cut(strings.TrimRight(line, "\r\n"), ":")
		name, isCmd := strings.CutPrefix(name, "cmdstat_")
		if !ok || !isCmd || name == "info" {
			continue
		}
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			f, _ := strconv.ParseFloat(v, 64)
			switch k {
			case "calls":
				s.calls[name] = f
			case "usec":
				s.usec[name] = f
			}
		}
	}
	for name, n := range p.own {
		if _, ok := s.calls[name]; ok {
			s.calls[name] -= float64(n)
		}
	}
	info, err := p.do("INFO", "stats")
	if err != nil {
		return s, err
	}
	reads, err := strconv.ParseFloat(infoField(info, "total_reads_processed"), 64)
	if err != nil {
		return s, fmt.Errorf("redis total_reads_processed: %w", err)
	}
	s.reads = reads - float64(p.ownTotal())
	user, sys, err := procCPUSplit(p.pid)
	if err != nil {
		return s, err
	}
	s.cpu, s.sysCPU = float64((user + sys).Microseconds()), float64(sys.Microseconds())
	for _, node := range append([]*Target{w.t}, w.t.peers...) {
		v, err := node.metric("inboxmq_redis_requests_total")
		if err != nil {
			return s, err
		}
		s.requests += v
	}
	nodeCPU, err := w.t.CPU()
	if err != nil {
		return s, err
	}
	s.nodeCPU = float64(nodeCPU.Microseconds())
	return s, nil
}

func (s costSample) minus(o costSample) costSample {
	d := costSample{calls: map[string]float64{}, usec: map[string]float64{}, cpu: s.cpu - o.cpu, sysCPU: s.sysCPU - o.sysCPU,
		reads: s.reads - o.reads, requests: s.requests - o.requests, nodeCPU: s.nodeCPU - o.nodeCPU}
	for k, v := range s.calls {
		d.calls[k] = v - o.calls[k]
	}
	for k, v := range s.usec {
		d.usec[k] = v - o.usec[k]
	}
	return d
}

func (s costSample) scale(f float64) costSample {
	d := costSample{calls: map[string]float64{}, usec: map[string]float64{}, cpu: s.cpu * f, sysCPU: s.sysCPU * f,
		reads: s.reads * f, requests: s.requests * f, nodeCPU: s.nodeCPU * f}
	for k, v := range s.calls {
		d.calls[k] = v * f
	}
	for k, v := range s.usec {
		d.usec[k] = v * f
	}
	return d
}

// report adds the per-message figures of cost, the cost of n messages.
func (s costSample) report(r *Result, n float64, background costSample) {
	var total, scripts float64
	for name, v := range s.calls {
		total += v
		if strings.HasPrefix(name, "eval") || strings.HasPrefix(name, "fcall") {
			scripts += v
		}
	}
	r.add("redis_cmds_per_msg", "Redis commands per message (counting those in scripts)", "", "lower", total/n)
	r.add("redis_scripts_per_msg", "  of which script calls (EVAL*)", "", "", scripts/n)
	r.add("redis_requests_per_msg", "requests from the nodes per message (round trips)", "", "lower", s.requests/n)
	r.add("redis_reads_per_msg", "  Redis read events per message (cross-check)", "", "", s.reads/n)
	r.add("redis_cpu_us_per_msg", "Redis CPU per message", "µs", "lower", s.cpu/n)
	r.add("redis_sys_cpu_us_per_msg", "  of which in the kernel (sockets, AOF writes and fsyncs)", "µs", "", s.sysCPU/n)
	r.add("node_cpu_us_per_msg", "nodes' CPU per message", "µs", "lower", s.nodeCPU/n)
	names := slices.SortedFunc(maps.Keys(s.calls), func(x, y string) int {
		return cmp.Or(cmp.Compare(s.calls[y], s.calls[x]), cmp.Compare(x, y))
	})
	for _, name := range names {
		if s.calls[name]/n < 0.005 {
			continue
		}
		r.add("per_msg_"+name, fmt.Sprintf("  %s per message (%.1f µs in Redis)", strings.ToUpper(name), s.usec[name]/n), "", "",
			s.calls[name]/n)
	}
	var bgTotal float64
	for _, v := range background.calls {
		bgTotal += v
	}
	r.Params["background_per_s"] = fmt.Sprintf("%.1f commands, %.1f requests, %.0f µs Redis CPU",
		bgTotal, background.requests, background.cpu)
}

// costProbe reads Redis's counters and keeps count of the commands it
// sends itself, so that they can be taken out.
type costProbe struct {
	*redisProbe
	own map[string]int64 // command (lower case) -> calls
}

func newCostProbe(addr string) (*costProbe, error) {
	p, err := newRedisProbe(addr)
	if err != nil {
		return nil, err
	}
	return &costProbe{redisProbe: p, own: map[string]int64{}}, nil
}

// do sends one command on a fresh connection.
func (p *costProbe) do(args ...string) (string, error) {
	p.own[strings.ToLower(args[0])]++
	out, err := redistest.Do(p.addr, 5*time.Second, args...)
	if err != nil {
		return "", fmt.Errorf("redis %s: %w", args[0], err)
	}
	return out, nil
}

func (p *costProbe) ownTotal() int64 {
	var n int64
	for _, v := range p.own {
		n += v
	}
	return n
}

// origin is what the MONITOR pass counted for one source of commands.
type origin struct {
	calls, commands float64
	inner           map[string]float64 // for a script: the commands it ran
}

// reportOrigins adds where the commands of m messages came from.
func reportOrigins(r *Result, origins map[string]*origin, m float64) {
	names := slices.SortedFunc(maps.Keys(origins), func(x, y string) int {
		return cmp.Or(cmp.Compare(origins[y].commands, origins[x].commands), cmp.Compare(x, y))
	})
	for _, name := range names {
		o := origins[name]
		if o.commands/m < 0.005 {
			continue
		}
		r.add("from_"+name, fmt.Sprintf("  commands from %s (%.2f calls)", name, o.calls/m), "", "", o.commands/m)
		if len(o.inner) > 0 {
			keys := slices.Sorted(maps.Keys(o.inner))
			parts := make([]string, len(keys))
			for i, k := range keys {
				parts[i] = fmt.Sprintf("%s %.2f", k, o.inner[k]/o.calls)
			}
			r.Notes = append(r.Notes, fmt.Sprintf("%s runs per call: %s", name, strings.Join(parts, ", ")))
		}
	}
}

// metric reads one counter of a node's /metrics.
func (t *Target) metric(name string) (float64, error) {
	body, err := t.adminGet("/metrics")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, fmt.Errorf("read metrics: %w", err)
	}
	return 0, fmt.Errorf("metrics: no %s (a build without it?)", name)
}
