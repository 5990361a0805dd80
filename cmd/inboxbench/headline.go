package main

import (
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// The headline figure of a messaging scenario is the broker's CPU per
// delivered message: its user+system time from /proc/PID/stat over the
// scenario, divided by the messages its clients received (distinct, the
// sender's MsgSent copies not counted). Throughput on a shared 2-core
// machine mostly measures the clients; CPU per message does not depend on
// who else runs. The two brokers run alternately (A B A B A B, -rounds
// times each), so that a change in the machine's load during the run
// touches both; the summary gives the median and the range of each.

// cpuPerDeliveryKey is the headline figure's key.
const cpuPerDeliveryKey = "cpu_us_per_delivery"

// addCPUPerDelivery adds the headline figure from the figures a scenario
// reported: its broker CPU (offline: queueing and drain) over its
// deliveries. Scenarios without both (conns) get none.
func addCPUPerDelivery(r *Result) {
	cpu, ok := r.Get("cpu_s")
	if !ok {
		q, ok1 := r.Get("cpu_queue_s")
		d, ok2 := r.Get("cpu_drain_s")
		cpu, ok = q+d, ok1 && ok2
	}
	n, _ := r.Get("received")
	if !ok || n <= 0 {
		return
	}
	r.add(cpuPerDeliveryKey, "broker CPU per delivered message", "µs", "lower", cpu*1e6/n)
}

// runSlot is one run of a scenario variant: which round, where, which broker.
type runSlot struct {
	round     int // from 1
	placement string
	broker    string
}

// runOrder alternates the brokers inside each round and placement, so that
// with inboxmq and Mosquitto the order is A B A B A B.
func runOrder(brokers []string, rounds int, places []string) []runSlot {
	var out []runSlot
	for round := 1; round <= rounds; round++ {
		for _, p := range places {
			for _, b := range brokers {
				out = append(out, runSlot{round, p, b})
			}
		}
	}
	return out
}

// scenarioName is a result's name: the variant, marked when pinned.
func scenarioName(variant, placement string) string {
	if placement == Pinned {
		return variant + " pinned"
	}
	return variant
}

// summary is the median and range of one figure over runs.
type summary struct {
	median, min, max float64
	n                int
}

func summarize(xs []float64) summary {
	if len(xs) == 0 {
		return summary{}
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return summary{median: m, min: s[0], max: s[len(s)-1], n: len(s)}
}

func (s summary) String(unit string) string {
	if s.n <= 1 {
		return format(s.median, unit)
	}
	return fmt.Sprintf("%s (%s-%s, %d runs)", format(s.median, unit), format(s.min, ""), format(s.max, ""), s.n)
}

// groupRuns collects the results of each scenario and broker, in the order
// they first appear.
func groupRuns(results []*Result) [][]*Result {
	var groups [][]*Result
	index := map[[2]string]int{}
	for _, r := range results {
		k := [2]string{r.Scenario, r.Broker}
		i, ok := index[k]
		if !ok {
			i = len(groups)
			index[k] = i
			groups = append(groups, nil)
		}
		groups[i] = append(groups[i], r)
	}
	return groups
}

// mergeRounds returns one result per scenario and broker: a result that
// ran once as it is, else one whose figures are the medians over its runs
// (Compare and Goals read these).
func mergeRounds(results []*Result) []*Result {
	var out []*Result
	for _, runs := range groupRuns(results) {
		if len(runs) == 1 {
			out = append(out, runs[0])
			continue
		}
		m := &Result{Scenario: runs[0].Scenario, Broker: runs[0].Broker, Params: map[string]any{"runs": len(runs)}}
		for _, f := range runs[0].Figures {
			var xs []float64
			for _, r := range runs {
				if v, ok := r.Get(f.Key); ok {
					xs = append(xs, v)
				}
			}
			f.Value = summarize(xs).median
			m.Figures = append(m.Figures, f)
		}
		out = append(out, m)
	}
	return out
}

// headlineThroughput is the throughput figure shown beside the headline,
// per scenario variant.
var headlineThroughput = map[string]string{
	"dm-max":       "throughput",
	"dm-paced":     "rate",
	"offline":      "queue_rate",
	"offline-kill": "queue_rate",
	"fanout":       "deliveries_per_s",
}

// Headline prints, per scenario, the broker CPU per delivered message of
// each broker (median and range over its runs) with the ratio of the
// medians, the median throughput beside it, and how much of the machine
// other processes used during those runs (figures are pessimistic when
// it is high).
func Headline(w io.Writer, results []*Result) error {
	type row struct {
		scenario string
		cpu      map[string]summary
		tput     map[string]summary
		other    []float64 // other processes' share of the machine in each run, %
		unit     string
	}
	var rows []*row
	byName := map[string]*row{}
	for _, runs := range groupRuns(results) {
		name := runs[0].Scenario
		var cpu, tput, other []float64
		unit := ""
		for _, r := range runs {
			if v, ok := r.Params["other_cpu_pct"].(float64); ok {
				other = append(other, v)
			}
			if v, ok := r.Get(cpuPerDeliveryKey); ok {
				cpu = append(cpu, v)
			}
			variant, _, _ := strings.Cut(name, " ")
			for _, f := range r.Figures {
				if f.Key == headlineThroughput[variant] {
					tput, unit = append(tput, f.Value), f.Unit
				}
			}
		}
		if len(cpu) == 0 {
			continue
		}
		rw := byName[name]
		if rw == nil {
			rw = &row{scenario: name, cpu: map[string]summary{}, tput: map[string]summary{}}
			byName[name] = rw
			rows = append(rows, rw)
		}
		rw.cpu[runs[0].Broker] = summarize(cpu)
		rw.tput[runs[0].Broker] = summarize(tput)
		rw.other = append(rw.other, other...)
		rw.unit = unit
	}
	if len(rows) == 0 {
		return nil
	}
	var b strings.Builder
	b.WriteString("\n== headline: broker CPU per delivered message (/proc/PID/stat; median, range over alternating runs)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tinboxmq\tmosquitto\tratio\tthroughput inboxmq\tthroughput mosquitto\tother CPU\t")
	for _, rw := range rows {
		cell := func(m map[string]summary, broker, unit string) string {
			if s, ok := m[broker]; ok && s.n > 0 {
				return s.String(unit)
			}
			return "-"
		}
		ratio := "-"
		im, ok1 := rw.cpu[Inboxmq]
		mq, ok2 := rw.cpu[Mosquitto]
		if ok1 && ok2 && mq.median > 0 {
			ratio = fmt.Sprintf("%.2f", im.median/mq.median)
		}
		other := "-"
		if o := summarize(rw.other); o.n > 0 {
			other = fmt.Sprintf("%.0f%% (%.0f-%.0f)", o.median, o.min, o.max)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", rw.scenario,
			cell(rw.cpu, Inboxmq, "µs"), cell(rw.cpu, Mosquitto, "µs"), ratio,
			cell(rw.tput, Inboxmq, rw.unit), cell(rw.tput, Mosquitto, rw.unit), other)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write headline: %w", err)
	}
	return nil
}
