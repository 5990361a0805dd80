package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// UID ranges: users, offline senders and idle connections never share a uid.
const (
	userBase   = 100000
	senderBase = 900000
	idleBase   = 200000
)

// bench runs scenarios with one set of options.
type bench struct {
	o   Options
	out io.Writer // tables and JSON lines
	log io.Writer // progress lines
	aff *affinity // the harness's CPU placement; nil without pinned runs
}

// Run raises the file limit, runs every selected scenario against every
// selected broker, prints each result, and with both brokers the
// comparison and the targets. Scenario failures are reported and the run
// goes on; the joined error is returned at the end.
func Run(o Options, stdout, stderr io.Writer) ([]*Result, error) {
	if err := o.validate(); err != nil {
		return nil, err
	}
	cur, hard, err := RaiseFileLimit()
	if err != nil {
		return nil, err
	}
	if o.InboxmqBin == "" && slices.Contains(o.Brokers, Inboxmq) {
		bin, dir, err := BuildInboxmq()
		if err != nil {
			return nil, err
		}
		defer os.RemoveAll(dir)
		o.InboxmqBin = bin
	}
	b := &bench{o: o, out: stdout, log: stderr}
	if slices.Contains(placements(o.Placement), Pinned) {
		if b.aff, err = newAffinity(); err != nil {
			return nil, err
		}
		defer func() {
			if err := b.aff.set(""); err != nil {
				fmt.Fprintf(stderr, "inboxbench: %v\n", err)
			}
		}()
	}
	b.header(cur, hard)
	if slices.Contains(o.Scenarios, "conns") && cur < uint64(o.Conns)+64 {
		fmt.Fprintf(stderr, "inboxbench: warning: RLIMIT_NOFILE %d is too low for %d connections\n", cur, o.Conns)
	}
	var results []*Result
	var errs []error
	for _, s := range o.Scenarios {
		for _, variant := range variants(s, o) {
			slots := runOrder(o.Brokers, o.Rounds, placements(o.Placement))
			if variant == "scale" || variant == "rediscost" || variant == "conns" {
				// Once, co-located: inboxmq's store configurations (nothing
				// to alternate with), and idle memory (no CPU per message).
				slots = runOrder(o.Brokers, 1, []string{Shared})
			}
			for _, slot := range slots {
				kind := slot.broker
				var r *Result
				var err error
				if variant == "scale" || variant == "rediscost" {
					if kind != Inboxmq {
						continue // inboxmq's store configurations, nothing to compare
					}
					if variant == "scale" {
						r, err = b.scale()
					} else {
						r, err = b.redisCost()
					}
				} else {
					r, err = b.runOne(variant, kind, slot)
				}
				if r != nil {
					results = append(results, r)
					if err := r.Print(stdout); err != nil {
						return results, err
					}
				}
				if err != nil {
					err = fmt.Errorf("%s on %s: %w", variant, kind, err)
					fmt.Fprintf(stderr, "inboxbench: %v\n", err)
					errs = append(errs, err)
				}
			}
		}
	}
	merged := mergeRounds(results)
	if len(o.Brokers) == 2 {
		if err := Compare(stdout, merged); err != nil {
			return results, err
		}
	}
	if err := Headline(stdout, results); err != nil {
		return results, err
	}
	if slices.Contains(o.Brokers, Inboxmq) {
		if err := Goals(stdout, merged); err != nil {
			return results, err
		}
	}
	return results, errors.Join(errs...)
}

func variants(scenario string, o Options) []string {
	switch scenario {
	case "dm":
		if o.Rate > 0 {
			return []string{"dm-max", "dm-paced"}
		}
		return []string{"dm-max"}
	case "offline":
		return []string{"offline", "offline-kill"}
	}
	return []string{scenario}
}

// runOne runs a scenario variant on a fresh broker, pinned or not as slot
// says; the result is named after the variant and the placement, and
// carries the headline figure (CPU per delivered message).
func (b *bench) runOne(variant, kind string, slot runSlot) (*Result, error) {
	o := b.o
	harness := ""
	if slot.placement == Pinned {
		o.pinBroker, harness = o.BrokerCPUs, o.HarnessCPUs
	}
	if b.aff != nil {
		if err := b.aff.set(harness); err != nil {
			return nil, err
		}
	}
	busy0, own0, start := machineBusy(), ownCPU(), time.Now()
	t, err := StartTarget(kind, o)
	if err != nil {
		return nil, err
	}
	if slot.placement == Pinned {
		err = errors.Join(checkPinned(kind, t.PID(), o.pinBroker), checkPinned("the harness", os.Getpid(), harness))
		if err != nil {
			return nil, errors.Join(err, t.Stop())
		}
	}
	r, err := b.runOn(t, variant)
	if serr := t.Stop(); serr != nil {
		fmt.Fprintf(b.log, "inboxbench: %s: %v\n", kind, serr)
	}
	if r != nil {
		b.noteCompetition(r, busy0, own0, time.Since(start))
		addCPUPerDelivery(r)
		r.Scenario = scenarioName(variant, slot.placement)
		if b.o.Rounds > 1 {
			r.Params["round"] = slot.round
		}
		if slot.placement == Pinned {
			r.Params["broker_cpus"], r.Params["harness_cpus"] = o.BrokerCPUs, o.HarnessCPUs
		}
	}
	if err != nil && t.Log() != "" {
		err = fmt.Errorf("%w\nbroker output:\n%s", err, clip(t.Log()))
	}
	return r, err
}

// noteCompetition records how much CPU other processes used while the
// scenario ran: the machine's busy time (/proc/stat) minus the harness's
// and its children's (the brokers, reaped after they stop). Load average
// is no guide here: the harness and the broker alone make it 3 to 5.
func (b *bench) noteCompetition(r *Result, busy0, own0, wall time.Duration) {
	busy, own := machineBusy(), ownCPU()
	if busy0 == 0 || busy == 0 || wall <= 0 {
		return
	}
	other := max(0, (busy-busy0)-(own-own0))
	share := float64(other) / float64(wall) / float64(runtime.NumCPU())
	r.Params["other_cpu_pct"] = float64(int(share*1000)) / 10
	if share > 0.05 {
		r.Notes = append(r.Notes, fmt.Sprintf("other processes used %.0f%% of the machine's CPU during this run "+
			"(%.1f CPU-s of %.1f s x %d CPUs): figures are pessimistic", share*100, other.Seconds(), wall.Seconds(), runtime.NumCPU()))
	}
}

// machineBusy is the CPU time all processes have used since boot
// (/proc/stat: user, nice, system, irq, softirq, steal); 0 when unreadable.
func machineBusy() time.Duration {
	s, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(s), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return 0
	}
	var ticks int64
	for _, i := range []int{1, 2, 3, 6, 7, 8} { // not idle (4) or iowait (5)
		v, err := strconv.ParseInt(f[i], 10, 64)
		if err != nil {
			return 0
		}
		ticks += v
	}
	const hz = 100 // USER_HZ
	return time.Duration(ticks) * time.Second / hz
}

// ownCPU is the CPU time of the harness and of its children that have
// ended (brokers, go build).
func ownCPU() time.Duration {
	var self, children syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &self) != nil || syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children) != nil {
		return 0
	}
	return time.Duration(self.Utime.Nano() + self.Stime.Nano() + children.Utime.Nano() + children.Stime.Nano())
}

// runOn runs one scenario variant against a broker that is already running.
func (b *bench) runOn(t *Target, variant string) (*Result, error) {
	switch variant {
	case "dm-max":
		return b.dm(t, false)
	case "dm-paced":
		return b.dm(t, true)
	case "offline":
		return b.offline(t, false)
	case "offline-kill":
		return b.offline(t, true)
	case "fanout":
		return b.fanout(t)
	case "conns":
		return b.conns(t)
	}
	return nil, fmt.Errorf("unknown scenario %q", variant)
}

func (b *bench) header(cur, hard uint64) {
	load := "?"
	if s, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(s))[:3], " ")
	}
	mosq := "mosquitto not found"
	if bin, err := MosquittoPath(b.o.MosquittoBin); err == nil {
		// mosquitto -h prints its version and exits with status 3.
		if out, _ := exec.Command(bin, "-h").CombinedOutput(); len(out) > 0 {
			mosq = strings.TrimSpace(strings.SplitN(string(out), "\n", 2)[0])
		}
	}
	fmt.Fprintf(b.out, "inboxbench: %d CPUs, GOMAXPROCS %d, %s, load average %s\n",
		runtime.NumCPU(), runtime.GOMAXPROCS(0), runtime.Version(), load)
	fmt.Fprintf(b.out, "inboxbench: RLIMIT_NOFILE raised to %d (hard limit %d), inherited by the brokers\n", cur, hard)
	if slices.Contains(b.o.Brokers, Mosquitto) {
		fmt.Fprintf(b.out, "inboxbench: %s; persistence snapshots every %d s (autosave_interval; Debian's config sets none, so the default)\n",
			mosq, MosquittoAutosave)
	}
	fmt.Fprintf(b.out, "inboxbench: brokers %s, scenarios %s, %d users, %d senders, %s per dm run, %.0f%% of clients on MQTT 5\n",
		strings.Join(b.o.Brokers, ","), strings.Join(b.o.Scenarios, ","), b.o.Users, b.o.Senders, b.o.Duration, b.o.V5*100)
}

// RaiseFileLimit sets the soft RLIMIT_NOFILE to the hard limit and
// returns both. Child processes (the brokers) inherit it.
func RaiseFileLimit() (cur, hard uint64, err error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, 0, fmt.Errorf("getrlimit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, 0, fmt.Errorf("setrlimit NOFILE %d: %w", l.Max, err)
		}
	}
	return l.Cur, l.Max, nil
}

// progress prints line() to the log about every 2 s until stop is called.
func (b *bench) progress(label string, line func() string) (stop func()) {
	start := time.Now()
	return every(2*time.Second, func() {
		fmt.Fprintf(b.log, "inboxbench: [%s] %4.0fs %s\n", label, time.Since(start).Seconds(), line())
	})
}

// every calls f every interval, on a goroutine of its own, until stop is
// called; stop returns once f has returned for the last time, and may be
// called again.
func every(interval time.Duration, f func()) (stop func()) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				f()
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); wg.Wait() }) }
}

func uids(base, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = strconv.Itoa(base + i)
	}
	return out
}

// connectUsers connects one persistent session per uid (client id = uid),
// subscribed at QoS 1 to topic(uid), with handler(i) receiving user i's
// messages.
func (b *bench) connectUsers(t *Target, label string, ids []string, topic func(string) string,
	handler func(int) func(string, []byte), lost *atomic.Int64) ([]Client, error) {
	clients := make([]Client, len(ids))
	var done atomic.Int64
	stop := b.progress(label, func() string { return fmt.Sprintf("connected %d of %d", done.Load(), len(ids)) })
	defer stop()
	err := parallel(len(ids), b.o.Parallel, func(i int) error {
		pass, err := t.Password(ids[i])
		if err != nil {
			return err
		}
		c, err := Connect(Dial{Addr: t.AddrFor(i), ClientID: ids[i], User: userName(t, ids[i]), Password: pass,
			V5: isV5(i, b.o.V5), Persistent: true, OnMessage: handler(i), Lost: lost})
		if err != nil {
			return err
		}
		clients[i] = c
		if err := c.Subscribe(topic(ids[i])); err != nil {
			return fmt.Errorf("%s: %w", ids[i], err)
		}
		done.Add(1)
		return nil
	})
	if err != nil {
		closeAll(clients)
		return nil, err
	}
	return clients, nil
}

// userName is the MQTT username: the uid on inboxmq, none on Mosquitto
// (anonymous, like the clients of a broker without auth).
func userName(t *Target, uid string) string {
	if t.Kind == Inboxmq {
		return uid
	}
	return ""
}

func inboxTopic(uid string) string { return "inbox/" + uid }

func closeAll(clients []Client) {
	var wg sync.WaitGroup
	for _, c := range clients {
		if c == nil {
			continue
		}
		wg.Add(1)
		go func() { defer wg.Done(); c.Close() }()
	}
	wg.Wait()
}

// cpuSince is the broker CPU used since before; 0 when unreadable.
func cpuSince(t *Target, before time.Duration) time.Duration {
	now, err := t.CPU()
	if err != nil {
		return 0
	}
	return now - before
}

// harnessCPU is the CPU time this process (the clients) has used so far:
// on a 2-core machine it competes with the broker, so it is reported.
func harnessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// request is the im/sendmsg payload; against Mosquitto the same bytes go
// straight to the recipient's inbox topic.
func request(recipient string, text []byte, cid string) []byte {
	p := make([]byte, 0, len(text)+len(recipient)+len(cid)+32)
	p = append(p, `{"uid":"`...)
	p = append(p, recipient...)
	p = append(p, `","msg":"`...)
	p = append(p, text...)
	p = append(p, `","cid":"`...)
	p = append(p, cid...)
	return append(p, `"}`...)
}
