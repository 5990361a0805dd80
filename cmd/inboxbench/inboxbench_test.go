package main

import (
	"bytes"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// TestQuickRun runs every scenario in -quick mode against the real inboxmq
// binary and requires a correct run: nothing acknowledged is lost, nothing
// arrives out of order or twice, and every idle connection is held.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary for about 30 s")
	}
	o := QuickOptions()
	o.Brokers = []string{Inboxmq}
	o.Scenarios = []string{"dm", "offline", "fanout", "conns"} // scale: TestQuickScale
	var out bytes.Buffer
	results, err := Run(o, &out, testLog{t})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"dm-max", "dm-paced", "offline", "offline-kill", "fanout", "conns"}
	if len(results) != len(want) {
		t.Fatalf("%d results, want %d", len(results), len(want))
	}
	for i, r := range results {
		if r.Scenario != want[i] || r.Broker != Inboxmq {
			t.Errorf("result %d is %s on %s, want %s on inboxmq", i, r.Scenario, r.Broker, want[i])
		}
		if r.Scenario == "conns" {
			held, _ := r.Get("held")
			if held != float64(o.Conns) {
				t.Errorf("conns: %v of %d connections held", held, o.Conns)
			}
			// The Go runtime's figures come from the broker's /metrics:
			// an idle client has its read goroutine and no write goroutine
			// (third_party/mochi-mqtt-server/PATCHES.md, patch 3).
			if g, ok := r.Get("goroutines_per_conn"); !ok || g < 0.9 || g > 1.5 {
				t.Errorf("conns: %v goroutines per connection (reported %v), want about 1", g, ok)
			}
			for _, key := range []string{"stack_per_conn_kb", "live_stack_per_conn_kb", "live_heap_per_conn_kb", "rss_per_conn_kb"} {
				if v, ok := r.Get(key); !ok || v <= 0 || v > 200 {
					t.Errorf("conns: %s = %v (reported %v), want a few KB", key, v, ok)
				}
			}
			continue
		}
		acked, _ := r.Get("acked")
		if acked == 0 {
			t.Errorf("%s: nothing acknowledged", r.Scenario)
		}
		for _, key := range []string{"lost", "out_of_order", "duplicates", "other", "publish_errors"} {
			if v, _ := r.Get(key); v != 0 {
				t.Errorf("%s: %s = %v, want 0 (notes: %v)", r.Scenario, key, v, r.Notes)
			}
		}
	}
	if !strings.Contains(out.String(), `{"scenario":"dm-max","broker":"inboxmq"`) {
		t.Error("no JSON line for dm-max")
	}
}

// TestQuickScale runs the scale scenario in -quick mode (100 users, 3 s
// per run, about 20 s in all) against the real inboxmq binary and a
// redis-server: every run must be correct, and the Redis runs must report
// the commands per message.
func TestQuickScale(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the real binary and redis-server for about 20 s")
	}
	o := QuickOptions()
	o.Brokers = []string{Inboxmq}
	o.Scenarios = []string{"scale"}
	var out bytes.Buffer
	results, err := Run(o, &out, testLog{t})
	t.Log(out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 1 || results[0].Scenario != "scale" {
		t.Fatalf("results %v, want one scale result", results)
	}
	r := results[0]
	var names []string
	for _, sub := range r.Runs {
		names = append(names, sub.Scenario)
	}
	if strings.Join(names, ",") != "embedded-1,redis-1,redis-2" {
		t.Fatalf("runs %v, want embedded-1, redis-1, redis-2", names)
	}
	for _, sub := range r.Runs {
		if acked, _ := sub.Get("acked"); acked == 0 {
			t.Errorf("%s: nothing acknowledged", sub.Scenario)
		}
		for _, key := range []string{"lost", "out_of_order", "duplicates", "other", "publish_errors"} {
			if v, _ := sub.Get(key); v != 0 {
				t.Errorf("%s: %s = %v, want 0 (notes: %v)", sub.Scenario, key, v, sub.Notes)
			}
		}
		perMsg, ok := sub.Get("redis_cmds_per_msg")
		if sub.Scenario == "embedded-1" {
			if ok {
				t.Errorf("embedded-1 reports Redis commands")
			}
			continue
		}
		if !ok || perMsg <= 0 {
			t.Errorf("%s: Redis commands per message %v (reported %v), want > 0", sub.Scenario, perMsg, ok)
		}
		if cpu, ok := sub.Get("redis_cpu_s"); !ok || cpu < 0 {
			t.Errorf("%s: Redis CPU %v (reported %v)", sub.Scenario, cpu, ok)
		}
	}
	if nodes := r.Run("redis-2").Params["nodes"]; nodes != 2 {
		t.Errorf("redis-2 ran on %v nodes, want 2", nodes)
	}
	if !strings.Contains(out.String(), `{"scenario":"scale","broker":"inboxmq"`) {
		t.Error("no JSON line for scale")
	}
}

func TestSplitNodes(t *testing.T) {
	const users, senders = 1000, 100
	node := splitNodes(users, senders, 2)
	var perNode, sendersPer, v5Per [2]int
	for i := range users {
		perNode[node(i)]++
		if isV5(i, 0.5) {
			v5Per[node(i)]++
		}
	}
	for j := range senders {
		sendersPer[node(j*users/senders)]++
	}
	if perNode != [2]int{500, 500} || sendersPer != [2]int{50, 50} || v5Per != [2]int{250, 250} {
		t.Fatalf("users %v, senders %v, MQTT 5 users %v per node: want an even split", perNode, sendersPer, v5Per)
	}
}

func TestParseFlags(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		wantErr bool
		check   func(Options) bool
	}{
		{"defaults", nil, false, func(o Options) bool {
			return o.Users == 1000 && o.Conns == 19900 && len(o.Brokers) == 2 && len(o.Scenarios) == 5 && o.Scenarios[4] == "scale"
		}},
		{"all without inboxmq has no scale", []string{"-broker", "mosquitto"}, false, func(o Options) bool {
			return len(o.Scenarios) == 4 && !slices.Contains(o.Scenarios, "scale")
		}},
		{"scale alone", []string{"-broker", "inboxmq", "-scenario", "scale"}, false, func(o Options) bool {
			return len(o.Scenarios) == 1 && o.Scenarios[0] == "scale"
		}},
		{"scale needs inboxmq", []string{"-broker", "mosquitto", "-scenario", "scale"}, true, nil},
		{"quick", []string{"-quick"}, false, func(o Options) bool { return o.Users == 100 && o.Duration == 3*time.Second }},
		{"quick with explicit users", []string{"-quick", "-users", "50"}, false, func(o Options) bool { return o.Users == 50 && o.Conns == 2000 }},
		{"one broker, two scenarios", []string{"-broker", "mosquitto", "-scenario", "dm,conns"}, false, func(o Options) bool {
			return len(o.Brokers) == 1 && o.Brokers[0] == Mosquitto && len(o.Scenarios) == 2
		}},
		{"slow log", []string{"-slow-log", "/tmp/slow.log"}, false, func(o Options) bool { return o.SlowLog == "/tmp/slow.log" }},
		{"no slow log by default", nil, false, func(o Options) bool { return o.SlowLog == "" }},
		{"unknown broker", []string{"-broker", "emqx"}, true, nil},
		{"unknown scenario", []string{"-scenario", "latency"}, true, nil},
		{"more senders than users", []string{"-users", "10", "-senders", "20"}, true, nil},
		{"extra argument", []string{"dm"}, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := parseFlags(tt.args, io.Discard)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if err == nil && !tt.check(o) {
				t.Fatalf("unexpected options %+v", o)
			}
		})
	}
}

func TestTrackerCounts(t *testing.T) {
	tr := NewTracker(2, 3, 64)
	send := func(sender int, seq uint32, to int) []byte {
		tr.Acked(sender, seq, to)
		return request("x", tr.Text(sender, seq), "c")
	}
	a0, a1, a2 := send(0, 0, 1), send(0, 1, 1), send(0, 2, 1)
	b0 := send(1, 0, 2)
	send(1, 1, 2) // never delivered: lost
	h1, h2 := tr.Handler(1), tr.Handler(2)
	h1("", a0)
	h1("", a2)
	h1("", a1) // out of order
	h1("", a1) // duplicate
	h2("", b0)
	h2("", []byte(`{"_method_":"MsgSent","ct":"bench 0 0 0 "}`))
	h2("", []byte(`{"_method_":"Error"}`))
	s := tr.Stats()
	if s.Acked != 5 || s.Received != 4 || s.Lost != 1 || s.Order != 1 || s.Dups != 1 || s.Copies != 1 || s.Other != 1 {
		t.Fatalf("stats %+v", s)
	}
	if len(s.Latency) != 4 || s.Latency[0] < 0 {
		t.Fatalf("latencies %v", s.Latency)
	}
}

func TestTrackerKeepsSlowMessages(t *testing.T) {
	for _, tc := range []struct {
		over time.Duration
		kept bool
	}{{slowLatency, true}, {time.Hour, false}, {0, false}} {
		tr := NewTracker(2, 3, 64)
		tr.slowOver = tc.over
		tr.Acked(1, 0, 2)
		msg := request("x", tr.Text(1, 0), "c")
		time.Sleep(slowLatency + time.Millisecond) // at least this late
		tr.Handler(2)("", msg)
		s := tr.Stats()
		if !tc.kept {
			if len(s.Slow) != 0 {
				t.Errorf("over %s: kept %v", tc.over, s.Slow)
			}
			continue
		}
		if len(s.Slow) != 1 {
			t.Fatalf("over %s: kept %v, want the one message", tc.over, s.Slow)
		}
		m := s.Slow[0]
		if m.Sender != 1 || m.Recipient != 2 || m.Latency < slowLatency || m.Latency != s.Latency[0] {
			t.Errorf("kept %+v (latency %v)", m, s.Latency)
		}
	}
}

// inProcess starts an in-process inboxmq (internal/mqtttest) for the
// benchmarks, so that -cpuprofile and -memprofile see the broker.
func inProcess(b *testing.B) *Target {
	b.Helper()
	cfg := mqtttest.Config(b)
	cfg.Log.Level = "warn"
	broker := mqtttest.Start(b, cfg)
	tokens, err := auth.NewTokens([]byte(mqtttest.Secret))
	if err != nil {
		b.Fatal(err)
	}
	return &Target{Kind: Inboxmq, Addr: broker.MQTTAddr(), tokens: tokens, adminPass: mqtttest.AdminPassword}
}

// BenchmarkDM_InProcess_100Users runs the dm workload (100 users, 10 senders
// in closed loop, half on MQTT 5) against an in-process inboxmq, b.N
// messages; ns/op is the time per acknowledged message. Profile the broker
// with -cpuprofile (the profile also holds the paho clients).
func BenchmarkDM_InProcess_100Users(b *testing.B) {
	target := inProcess(b)
	o := QuickOptions()
	o.Messages = b.N
	o.Duration = time.Hour
	bn := &bench{o: o, out: io.Discard, log: io.Discard}
	b.ReportAllocs()
	r, err := bn.dm(target, false)
	if err != nil {
		b.Fatal(err)
	}
	if lost, _ := r.Get("lost"); lost != 0 {
		b.Fatalf("%v messages lost", lost)
	}
	tput, _ := r.Get("throughput")
	b.ReportMetric(tput, "msg/s")
	b.ReportMetric(1e9/tput, "ns/op")
	p99, _ := r.Get("p99_ms")
	b.ReportMetric(p99, "p99-ms")
}

// BenchmarkFanout_InProcess_100Subs sends b.N admin notices to 100
// subscribers of broadcast on an in-process inboxmq; ns/op, B/op and
// allocs/op are per notice (100 deliveries).
func BenchmarkFanout_InProcess_100Subs(b *testing.B) {
	target := inProcess(b)
	o := QuickOptions()
	o.Notices = b.N
	bn := &bench{o: o, out: io.Discard, log: io.Discard}
	b.ReportAllocs()
	r, err := bn.fanout(target)
	if err != nil {
		b.Fatal(err)
	}
	if lost, _ := r.Get("lost"); lost != 0 {
		b.Fatalf("%v deliveries lost", lost)
	}
	rate, _ := r.Get("deliveries_per_s")
	b.ReportMetric(rate, "deliveries/s")
	b.ReportMetric(1e9/rate*float64(o.Users), "ns/op")
}

// testLog sends progress lines to the test log.
type testLog struct{ t *testing.T }

func (l testLog) Write(p []byte) (int, error) {
	l.t.Helper()
	l.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}
