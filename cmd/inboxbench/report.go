package main

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Figure is one measured number of a scenario.
type Figure struct {
	Key   string  // JSON key
	Label string  // table row
	Unit  string  // "msg/s", "ms", "s", "KiB", ""
	Value float64 // in Unit
	// Better is "higher" or "lower" when the ratio between brokers means
	// something, "" for counts that should simply be 0 or equal.
	Better string
}

// Result is one scenario run against one broker.
type Result struct {
	Scenario string
	Broker   string
	Params   map[string]any
	Figures  []Figure
	Notes    []string
	// Runs are the configurations of a side-by-side scenario (scale), each
	// a Result whose Scenario names the configuration; Figures then hold
	// the summary.
	Runs []*Result
}

// Get returns the value of the figure named key and whether it exists.
func (r *Result) Get(key string) (float64, bool) {
	for _, f := range r.Figures {
		if f.Key == key {
			return f.Value, true
		}
	}
	return 0, false
}

func (r *Result) add(key, label, unit, better string, v float64) {
	r.Figures = append(r.Figures, Figure{Key: key, Label: label, Unit: unit, Value: v, Better: better})
}

func (r *Result) addLatency(s Stats) {
	for _, p := range []struct {
		key, label string
		pct        float64
	}{{"p50_ms", "latency p50", 50}, {"p90_ms", "latency p90", 90}, {"p99_ms", "latency p99", 99}, {"max_ms", "latency max", 100}} {
		r.add(p.key, p.label, "ms", "lower", ms(Percentile(s.Latency, p.pct)))
	}
}

// addDelivery adds the correctness counts shared by every messaging scenario.
func (r *Result) addDelivery(s Stats) {
	r.add("acked", "publishes acknowledged", "", "", float64(s.Acked))
	r.add("received", "deliveries received (distinct)", "", "", float64(s.Received))
	r.add("lost", "lost (acked, never received)", "", "", float64(s.Lost))
	r.add("duplicates", "duplicates", "", "", float64(s.Dups))
	r.add("out_of_order", "out of order (per pair)", "", "", float64(s.Order))
	if s.Copies > 0 {
		r.add("sent_copies", "MsgSent copies to senders", "", "", float64(s.Copies))
	}
	if s.Other > 0 {
		r.add("other", "unexpected messages", "", "", float64(s.Other))
		r.Notes = append(r.Notes, "first unexpected message: "+clip(s.Sample))
	}
	if s.PubErrs > 0 {
		r.add("publish_errors", "publish errors", "", "", float64(s.PubErrs))
	}
	if s.ConnLost > 0 {
		r.add("conns_lost", "connections lost", "", "", float64(s.ConnLost))
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func clip(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

func format(v float64, unit string) string {
	var s string
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		s = fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 10:
		s = fmt.Sprintf("%.1f", v)
	default:
		s = fmt.Sprintf("%.2f", v)
	}
	if unit != "" {
		s += " " + unit
	}
	return s
}

// Print writes the human table and then the JSON line.
func (r *Result) Print(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\n== %s · %s ·", r.Scenario, r.Broker)
	for _, k := range slices.Sorted(maps.Keys(r.Params)) {
		fmt.Fprintf(&b, " %s=%v", k, r.Params[k])
	}
	b.WriteString("\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(r.Runs) > 0 {
		r.printRuns(&b, tw)
	}
	for _, f := range r.Figures {
		fmt.Fprintf(tw, "  %s\t%s\t\n", f.Label, format(f.Value, f.Unit))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note: %s\n", n)
	}
	for _, sub := range r.Runs {
		for _, n := range sub.Notes {
			fmt.Fprintf(&b, "  note (%s): %s\n", sub.Scenario, n)
		}
	}
	line, err := r.JSON()
	if err != nil {
		return err
	}
	b.Write(line)
	b.WriteString("\n")
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write result: %w", err)
	}
	return nil
}

// printRuns writes the figures of every run side by side: one row per
// figure (in the order they first appear), one column per run.
func (r *Result) printRuns(b *strings.Builder, tw *tabwriter.Writer) {
	var rows []Figure
	seen := map[string]bool{}
	for _, sub := range r.Runs {
		for _, f := range sub.Figures {
			if !seen[f.Key] {
				seen[f.Key] = true
				rows = append(rows, f)
			}
		}
	}
	fmt.Fprint(tw, "  \t")
	for _, sub := range r.Runs {
		fmt.Fprintf(tw, "%s\t", sub.Scenario)
	}
	fmt.Fprintln(tw)
	for _, f := range rows {
		fmt.Fprintf(tw, "  %s\t", f.Label)
		for _, sub := range r.Runs {
			if v, ok := sub.Get(f.Key); ok {
				fmt.Fprintf(tw, "%s\t", format(v, f.Unit))
			} else {
				fmt.Fprint(tw, "-\t")
			}
		}
		fmt.Fprintln(tw)
	}
	fmt.Fprint(tw, "  other CPU (other processes)\t")
	for _, sub := range r.Runs {
		if v, ok := sub.Params["other_cpu_pct"]; ok {
			fmt.Fprintf(tw, "%v %%\t", v)
		} else {
			fmt.Fprint(tw, "-\t")
		}
	}
	fmt.Fprintln(tw)
	// A blank line between the runs' table and the summary, in the same
	// column layout.
	fmt.Fprintln(tw, "\t")
}

// jsonResult is the JSON form of a Result.
type jsonResult struct {
	Scenario string             `json:"scenario"`
	Broker   string             `json:"broker"`
	Params   map[string]any     `json:"params"`
	Metrics  map[string]float64 `json:"metrics"`
	Notes    []string           `json:"notes,omitempty"`
	Runs     []jsonResult       `json:"runs,omitempty"`
}

func (r *Result) jsonForm() jsonResult {
	metrics := make(map[string]float64, len(r.Figures))
	for _, f := range r.Figures {
		metrics[f.Key] = f.Value
	}
	j := jsonResult{r.Scenario, r.Broker, r.Params, metrics, r.Notes, nil}
	for _, sub := range r.Runs {
		j.Runs = append(j.Runs, sub.jsonForm())
	}
	return j
}

// JSON is the result as one JSON object; a scale result holds its runs
// under "runs", each with "scenario" naming the configuration.
func (r *Result) JSON() ([]byte, error) {
	b, err := json.Marshal(r.jsonForm())
	if err != nil {
		return nil, fmt.Errorf("encode result: %w", err)
	}
	return b, nil
}

// Compare prints, for every scenario run on both brokers, each figure side
// by side with the ratio inboxmq/Mosquitto.
func Compare(w io.Writer, results []*Result) error {
	var b strings.Builder
	b.WriteString("\n== inboxmq / Mosquitto (ratio > 1: inboxmq higher)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "scenario\tfigure\tinboxmq\tmosquitto\tratio\tbetter\t")
	for _, im := range results {
		if im.Broker != Inboxmq {
			continue
		}
		mq := find(results, im.Scenario, Mosquitto)
		if mq == nil {
			continue
		}
		for _, f := range im.Figures {
			other, ok := mq.Get(f.Key)
			if !ok {
				fmt.Fprintf(tw, "%s\t%s\t%s\t-\t-\t\t\n", im.Scenario, f.Label, format(f.Value, f.Unit))
				continue
			}
			ratio := "-"
			if other != 0 {
				ratio = fmt.Sprintf("%.2f", f.Value/other)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t\n", im.Scenario, f.Label, format(f.Value, f.Unit), format(other, f.Unit), ratio, f.Better)
		}
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write comparison: %w", err)
	}
	return nil
}

func find(results []*Result, scenario, broker string) *Result {
	for _, r := range results {
		if r.Scenario == scenario && r.Broker == broker {
			return r
		}
	}
	return nil
}

// goal is one of the targets, checked against the results.
type goal struct {
	name  string
	check func(results []*Result) (verdict string, ok bool, known bool)
}

// Goals prints the targets, each met, missed or not measured.
func Goals(w io.Writer, results []*Result) error {
	ratio := func(scenario, key string) (float64, bool) {
		im, mq := find(results, scenario, Inboxmq), find(results, scenario, Mosquitto)
		if im == nil || mq == nil {
			return 0, false
		}
		a, ok1 := im.Get(key)
		b, ok2 := mq.Get(key)
		if !ok1 || !ok2 || b == 0 {
			return 0, false
		}
		return a / b, true
	}
	value := func(scenario, key string) (float64, bool) {
		if r := find(results, scenario, Inboxmq); r != nil {
			return r.Get(key)
		}
		return 0, false
	}
	atLeast := func(scenario, key string, want float64) func([]*Result) (string, bool, bool) {
		return func([]*Result) (string, bool, bool) {
			r, ok := ratio(scenario, key)
			return fmt.Sprintf("%.2f", r), r >= want, ok
		}
	}
	atMost := func(scenario, key string, want float64, isRatio bool) func([]*Result) (string, bool, bool) {
		return func([]*Result) (string, bool, bool) {
			var v float64
			var ok bool
			if isRatio {
				v, ok = ratio(scenario, key)
			} else {
				v, ok = value(scenario, key)
			}
			return format(v, ""), v <= want, ok
		}
	}
	zeroAll := func(key string) func([]*Result) (string, bool, bool) {
		return func([]*Result) (string, bool, bool) {
			var sum float64
			known := false
			for _, r := range results {
				if r.Broker != Inboxmq {
					continue
				}
				if v, ok := r.Get(key); ok {
					sum += v
					known = true
				}
			}
			return format(sum, ""), sum == 0, known
		}
	}
	goals := []goal{
		{"dm throughput inboxmq/Mosquitto >= 1.0", atLeast("dm-max", "throughput", 1)},
		{"dm p99 at the paced rate <= 10 ms", atMost("dm-paced", "p99_ms", 10, false)},
		{"inboxmq lost = 0 (all scenarios)", zeroAll("lost")},
		{"inboxmq out of order = 0 (all scenarios)", zeroAll("out_of_order")},
		{"offline drain time inboxmq/Mosquitto <= 1.0", atMost("offline", "drain_s", 1, true)},
		{"offline after SIGKILL: inboxmq lost = 0", atMost("offline-kill", "lost", 0, false)},
		{"fan-out deliveries/s inboxmq/Mosquitto >= 1.0", atLeast("fanout", "deliveries_per_s", 1)},
		{"idle connections: all held", func([]*Result) (string, bool, bool) {
			r := find(results, "conns", Inboxmq)
			if r == nil {
				return "", false, false
			}
			held, _ := r.Get("held")
			want, _ := r.Get("opened_target")
			return fmt.Sprintf("%.0f of %.0f", held, want), held == want, true
		}},
		{"idle connections: <= 20 KB RSS per connection", atMost("conns", "rss_per_conn_kb", 20, false)},
	}
	var b strings.Builder
	b.WriteString("\n== targets (inboxmq)\n")
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	for _, g := range goals {
		v, ok, known := g.check(results)
		status := "not measured"
		if !known {
			v = ""
		} else {
			status = "MISSED"
			if ok {
				status = "met"
			}
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t\n", g.name, v, status)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("table: %w", err)
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		return fmt.Errorf("write targets: %w", err)
	}
	return nil
}
