package main

import (
	"bufio"
	"fmt"
	"os"
	"slices"
	"time"
)

// The paced run's latency tail on a shared two-core machine is mostly
// the machine's: when a GC mark phase, a store flush or the harness's own
// work fills both cores, every message in flight waits, whichever broker
// runs. The stall probe makes that visible in the same run: it sleeps
// probeSleep in a loop, and a wake-up stallLate or more past its due time
// is a moment in which the harness got no CPU for that long. A 2 ms
// sleep costs the harness about 2% of a core here (1 ms: 4%) and still
// catches most stalls of 3 ms.
const (
	probeSleep = 2 * time.Millisecond
	stallLate  = 3 * time.Millisecond
	// slowLatency is what counts as a slow message: the p99
	// target at the paced rate is 5 ms.
	slowLatency = 5 * time.Millisecond
)

// stall is one late wake-up of the probe: the harness ran nothing of the
// probe during [At-Late, At].
type stall struct {
	At   time.Time
	Late time.Duration
}

// stallProbe records stalls until Stop.
type stallProbe struct {
	stop    chan struct{}
	done    chan struct{}
	now     func() time.Time
	started time.Time
	stalls  []stall
}

// startStallProbe starts a probe that sleeps with sleep and reads the
// time with now (time.Sleep and time.Now outside tests).
func startStallProbe(sleep func(time.Duration), now func() time.Time) *stallProbe {
	p := &stallProbe{stop: make(chan struct{}), done: make(chan struct{}), now: now, started: now()}
	go func() {
		defer close(p.done)
		for {
			select {
			case <-p.stop:
				return
			default:
			}
			due := now().Add(probeSleep)
			sleep(probeSleep)
			if woke := now(); woke.Sub(due) >= stallLate {
				p.stalls = append(p.stalls, stall{At: woke, Late: woke.Sub(due)})
			}
		}
	}()
	return p
}

// Stop ends the probe and returns its stalls, oldest first, and how long
// it watched: the run's sending and the wait for its last deliveries.
func (p *stallProbe) Stop() ([]stall, time.Duration) {
	close(p.stop)
	<-p.done
	return p.stalls, p.now().Sub(p.started)
}

// slowMsg is one message that took slowLatency or longer from its
// publish to its receipt.
type slowMsg struct {
	Sent      time.Time
	Latency   time.Duration
	Sender    int
	Recipient int
}

// inStall reports how many of slow overlap a stall: the message was on
// its way (between Sent and its receipt) during part of the time the
// probe was not run. Both are sorted by time.
func inStall(slow []slowMsg, stalls []stall) int {
	n := 0
	for _, m := range slow {
		received := m.Sent.Add(m.Latency)
		// Stalls are few (tens per run): a scan per message is enough.
		for _, s := range stalls {
			if s.At.Add(-s.Late).Before(received) && s.At.After(m.Sent) {
				n++
				break
			}
		}
	}
	return n
}

// addStalls reports the probe's stalls, seen in watched, beside the
// latency figures, and which share of the slow messages were in flight
// during one.
func (r *Result) addStalls(stalls []stall, slow []slowMsg, watched time.Duration) {
	var longest time.Duration
	for _, s := range stalls {
		longest = max(longest, s.Late)
	}
	r.add("stalls", fmt.Sprintf("machine stalls (a %s sleep woke %s or more late)", probeSleep, stallLate), "", "", float64(len(stalls)))
	r.add("stall_max_ms", "longest machine stall", "ms", "", ms(longest))
	r.add("slow_msgs", fmt.Sprintf("messages slower than %s", slowLatency), "", "", float64(len(slow)))
	if len(slow) > 0 {
		r.add("slow_in_stall_pct", "of those, in flight during a machine stall", "%", "", 100*float64(inStall(slow, stalls))/float64(len(slow)))
	}
	if len(stalls) > 0 {
		r.Notes = append(r.Notes, fmt.Sprintf("the machine stalled %d times in %s (longest %s): latency above %s may be the machine's, not the broker's",
			len(stalls), watched.Round(time.Second), longest.Round(100*time.Microsecond), stallLate))
	}
}

// appendSlowLog appends one line per slow message and per stall of a run
// to path, in time order, for a timeline of the tail:
//
//	# <scenario> <broker>
//	slow <unix ms sent> <latency ms> <sender> <recipient>
//	stall <unix ms woke> <late ms>
func appendSlowLog(path, scenario, broker string, slow []slowMsg, stalls []stall) error {
	type line struct {
		at   time.Time
		text string
	}
	lines := make([]line, 0, len(slow)+len(stalls))
	for _, m := range slow {
		lines = append(lines, line{m.Sent, fmt.Sprintf("slow %d %.1f %d %d", m.Sent.UnixMilli(), ms(m.Latency), m.Sender, m.Recipient)})
	}
	for _, s := range stalls {
		lines = append(lines, line{s.At.Add(-s.Late), fmt.Sprintf("stall %d %.1f", s.At.UnixMilli(), ms(s.Late))})
	}
	slices.SortStableFunc(lines, func(a, b line) int { return a.at.Compare(b.at) })
	f, err := os.OpenFile(path, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return fmt.Errorf("slow log: %w", err)
	}
	w := bufio.NewWriter(f)
	fmt.Fprintf(w, "# %s %s\n", scenario, broker)
	for _, l := range lines {
		fmt.Fprintln(w, l.text)
	}
	if err := w.Flush(); err != nil {
		f.Close()
		return fmt.Errorf("slow log %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("slow log %s: %w", path, err)
	}
	return nil
}
