package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"reflect"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestParseProcStat(t *testing.T) {
	// Field 14 (utime) is 250 ticks, field 15 (stime) 50: 2.5 s and 0.5 s at USER_HZ 100.
	tail := " S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 1 0 100 200 300"
	tests := []struct {
		name              string
		line              string
		wantUser, wantSys time.Duration
		wantErr           bool
	}{
		{"plain name", "42 (mosquitto)" + tail, 2500 * time.Millisecond, 500 * time.Millisecond, false},
		{"name with spaces and parentheses", "42 (a (b) c)" + tail, 2500 * time.Millisecond, 500 * time.Millisecond, false},
		{"deny: no command name", "42 mosquitto" + tail, 0, 0, true},
		{"deny: cut short", "42 (inboxmq) S 1 2 3", 0, 0, true},
		{"deny: utime not a number", "42 (x) S 1 2 3 4 5 6 7 8 9 10 ab 50 0", 0, 0, true},
		{"deny: negative stime", "42 (x) S 1 2 3 4 5 6 7 8 9 10 250 -5 0", 0, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			user, sys, err := parseProcStat(tt.line)
			if (err != nil) != tt.wantErr || user != tt.wantUser || sys != tt.wantSys {
				t.Errorf("parseProcStat = %v, %v, %v; want %v, %v, error %v", user, sys, err, tt.wantUser, tt.wantSys, tt.wantErr)
			}
		})
	}
}

func TestRunOrderAlternates(t *testing.T) {
	got := runOrder([]string{Inboxmq, Mosquitto}, 3, []string{Shared})
	var order []string
	for i, s := range got {
		order = append(order, s.broker)
		if want := i/2 + 1; s.round != want {
			t.Errorf("slot %d in round %d, want %d", i, s.round, want)
		}
	}
	want := []string{Inboxmq, Mosquitto, Inboxmq, Mosquitto, Inboxmq, Mosquitto}
	if !reflect.DeepEqual(order, want) {
		t.Errorf("order %v, want %v", order, want)
	}
	// Both placements: each round runs both brokers shared, then pinned.
	got = runOrder([]string{Inboxmq, Mosquitto}, 2, []string{Shared, Pinned})
	var places []string
	for _, s := range got {
		places = append(places, s.placement+" "+s.broker)
	}
	wantPlaces := []string{"shared inboxmq", "shared mosquitto", "pinned inboxmq", "pinned mosquitto",
		"shared inboxmq", "shared mosquitto", "pinned inboxmq", "pinned mosquitto"}
	if !reflect.DeepEqual(places, wantPlaces) {
		t.Errorf("order %v, want %v", places, wantPlaces)
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name string
		xs   []float64
		want summary
	}{
		{"none", nil, summary{}},
		{"one", []float64{7}, summary{7, 7, 7, 1}},
		{"odd count, unsorted", []float64{90, 80, 120}, summary{90, 80, 120, 3}},
		{"even count: mean of the middle two", []float64{4, 1, 3, 2}, summary{2.5, 1, 4, 4}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := summarize(tt.xs); got != tt.want {
				t.Errorf("summarize(%v) = %+v, want %+v", tt.xs, got, tt.want)
			}
		})
	}
}

// fakeRun is a result as runOne leaves it.
func fakeRun(scenario, broker string, cpuS, received, tput float64) *Result {
	r := &Result{Scenario: scenario, Broker: broker, Params: map[string]any{"other_cpu_pct": cpuS}}
	r.add("throughput", "throughput (acked)", "msg/s", "higher", tput)
	r.add("received", "deliveries received (distinct)", "", "", received)
	r.add("cpu_s", "broker CPU", "s", "lower", cpuS)
	addCPUPerDelivery(r)
	return r
}

func TestAddCPUPerDelivery(t *testing.T) {
	r := fakeRun("dm-max", Inboxmq, 2, 40000, 1)
	if v, ok := r.Get(cpuPerDeliveryKey); !ok || v != 50 {
		t.Errorf("dm: %v µs per delivery (reported %v), want 50", v, ok)
	}
	off := &Result{Params: map[string]any{}}
	off.add("received", "", "", "", 1000)
	off.add("cpu_queue_s", "", "s", "", 0.3)
	off.add("cpu_drain_s", "", "s", "", 0.1)
	addCPUPerDelivery(off)
	if v, _ := off.Get(cpuPerDeliveryKey); v < 399.99 || v > 400.01 {
		t.Errorf("offline: %v µs per delivery, want queueing and drain over the deliveries, 400", v)
	}
	for _, deny := range []*Result{
		fakeRun("dm-max", Inboxmq, 2, 0, 1), // nothing delivered (Mosquitto after SIGKILL)
		{Params: map[string]any{}},          // no CPU figure (conns)
	} {
		if deny.Figures == nil {
			deny.add("received", "", "", "", 10)
		}
		addCPUPerDelivery(deny)
		if v, ok := deny.Get(cpuPerDeliveryKey); ok {
			t.Errorf("%+v: got %v µs per delivery, want none", deny.Figures, v)
		}
	}
}

func TestMergeRoundsAndHeadline(t *testing.T) {
	results := []*Result{
		fakeRun("dm-max", Inboxmq, 4, 50000, 10000), // 80 µs
		fakeRun("dm-max", Mosquitto, 1, 50000, 30000),
		fakeRun("dm-max", Inboxmq, 6, 50000, 9000), // 120 µs
		fakeRun("dm-max", Mosquitto, 0.75, 50000, 31000),
		fakeRun("dm-max", Inboxmq, 4.5, 50000, 9500), // 90 µs
		fakeRun("dm-max", Mosquitto, 1.25, 50000, 29000),
		fakeRun("dm-max pinned", Inboxmq, 4, 50000, 12000),
	}
	merged := mergeRounds(results)
	if len(merged) != 3 {
		t.Fatalf("%d merged results, want one per scenario and broker (3)", len(merged))
	}
	if v, _ := merged[0].Get(cpuPerDeliveryKey); v != 90 {
		t.Errorf("inboxmq median %v µs, want 90", v)
	}
	if v, _ := merged[1].Get("throughput"); v != 30000 {
		t.Errorf("mosquitto median throughput %v, want 30000", v)
	}
	if merged[2] != results[6] {
		t.Error("a result that ran once is not passed through as it is")
	}

	var out bytes.Buffer
	if err := Headline(&out, results); err != nil {
		t.Fatal(err)
	}
	t.Log(out.String())
	for _, want := range []string{
		"90 µs (80-120, 3 runs)", // inboxmq: median and range
		"20 µs (15-25, 3 runs)",  // mosquitto
		"4.50",                   // the ratio of the medians
		"9500 msg/s (9000-10000, 3 runs)",
		"dm-max pinned", // beside the co-located row
		"3% (1-6)",      // other processes' share over the dm-max runs of both brokers
	} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("headline lacks %q", want)
		}
	}
	// Nothing with a CPU figure: no table at all.
	out.Reset()
	if err := Headline(&out, []*Result{{Scenario: "conns", Broker: Inboxmq}}); err != nil || out.Len() != 0 {
		t.Errorf("headline of conns only = %q, %v; want nothing", out.String(), err)
	}
}

func TestParseCPUList(t *testing.T) {
	tests := []struct {
		in      string
		want    []int
		wantErr bool
	}{
		{"1", []int{1}, false},
		{"0-2", []int{0, 1, 2}, false},
		{"0,2-3", []int{0, 2, 3}, false},
		{"", nil, true},
		{"a", nil, true},
		{"3-1", nil, true},
		{"-1", nil, true},
		{"1;rm", nil, true},
	}
	for _, tt := range tests {
		got, err := parseCPUList(tt.in)
		if (err != nil) != tt.wantErr || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCPUList(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestCheckPinning(t *testing.T) {
	tests := []struct {
		name, broker, harness string
		ncpu                  int
		ok                    bool
	}{
		{"broker on 1, harness on 0", "1", "0", 2, true},
		{"deny: shared CPU", "0-1", "0", 2, false},
		{"deny: CPU the machine lacks", "2", "0", 2, false},
		{"deny: bad list", "x", "0", 2, false},
		{"deny: empty harness list", "1", "", 2, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := checkPinning(tt.broker, tt.harness, tt.ncpu); (err == nil) != tt.ok {
				t.Errorf("checkPinning(%q, %q, %d) = %v, want ok %v", tt.broker, tt.harness, tt.ncpu, err, tt.ok)
			}
		})
	}
}

func TestParseAffinityList(t *testing.T) {
	tests := []struct {
		out, want string
		wantErr   bool
	}{
		{"pid 42's current affinity list: 0,1\n", "0,1", false},
		{"pid 42's new affinity list: 1", "1", false},
		{"taskset: failed to get pid 42's affinity: No such process", "", true},
		{"pid 42's current affinity list: zz", "", true},
	}
	for _, tt := range tests {
		got, err := parseAffinityList(tt.out)
		if (err != nil) != tt.wantErr || got != tt.want {
			t.Errorf("parseAffinityList(%q) = %q, %v; want %q, error %v", tt.out, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestPlacementFlags(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("pinned runs need 2 CPUs")
	}
	o, err := parseFlags([]string{"-placement", "both", "-rounds", "3"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if o.Rounds != 3 || o.Placement != "both" || o.BrokerCPUs != "1" || o.HarnessCPUs != "0" {
		t.Errorf("options %+v, want 3 rounds, both placements, broker on 1 and harness on 0", o)
	}
	for _, bad := range [][]string{
		{"-rounds", "0"},
		{"-placement", "nowhere"},
		{"-placement", "pinned", "-broker-cpus", "0", "-harness-cpus", "0"},
	} {
		if _, err := parseFlags(bad, io.Discard); err == nil {
			t.Errorf("parseFlags(%q) succeeded, want an error", bad)
		}
	}
}

func TestParseCpusAllowed(t *testing.T) {
	status := "Name:\tinboxmq\nCpus_allowed:\t2\nCpus_allowed_list:\t1\nMems_allowed:\t1\n"
	if got, err := parseCpusAllowed(status); err != nil || got != "1" {
		t.Errorf("parseCpusAllowed = %q, %v; want 1", got, err)
	}
	if _, err := parseCpusAllowed("Name:\tx\nCpus_allowed:\t3\n"); err == nil {
		t.Error("a status without Cpus_allowed_list parsed")
	}
}

// The harness can move itself to a CPU and back, and reads where it runs.
func TestAffinityMovesTheHarness(t *testing.T) {
	if runtime.NumCPU() < 2 {
		t.Skip("needs 2 CPUs")
	}
	a, err := newAffinity()
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := a.set(""); err != nil {
			t.Error(err)
		}
	}()
	if err := a.set("0"); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned("the harness", os.Getpid(), "0"); err != nil {
		t.Error(err)
	}
	if err := checkPinned("the harness", os.Getpid(), "1"); err == nil {
		t.Error("checkPinned accepted CPU 1 for a process on CPU 0")
	}
	if err := a.set(""); err != nil {
		t.Fatal(err)
	}
	if err := checkPinned("the harness", os.Getpid(), a.initial); err != nil {
		t.Errorf("after the reset: %v", err)
	}
}

func TestListenInodes(t *testing.T) {
	table := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 111 1 0 100 0 0 10 0
   1: 00000000:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 222 1 0 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 333 1 0 20 4 30 10 -1
   3: 0100007F:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 444 1 0 100 0 0 10 0
`
	got := listenInodes(table, 0x1F90)
	want := map[string]bool{"111": true, "222": true} // not the established one (333), not another port (444)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("listenInodes = %v, want %v", got, want)
	}
	if got := listenInodes(table, 80); len(got) != 0 {
		t.Errorf("listenInodes on a port nobody listens on = %v", got)
	}
}

// A dial only proves that someone listens: the harness also checks that
// the listener is the broker's process.
func TestOwnsListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	if owns, err := ownsListener(os.Getpid(), port); err != nil || !owns {
		t.Errorf("ownsListener(this process, its port) = %v, %v; want true", owns, err)
	}
	if owns, err := ownsListener(1, port); err != nil || owns {
		t.Errorf("ownsListener(pid 1, this process's port) = %v, %v; want false", owns, err)
	}
	free, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	if owns, err := ownsListener(os.Getpid(), free); err != nil || owns {
		t.Errorf("ownsListener(a port nobody listens on) = %v, %v; want false", owns, err)
	}
}

// A broker that exits while another process listens on its port is
// reported as errExitedEarly, which startTarget retries on new ports,
// not as a failure to read its /proc entry (TestQuickScale once failed so).
func TestStartProcess_ExitedWhileAnotherListens(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	p, err := startProcess("fake", []string{"/bin/sh", "-c", "exit 3"}, ln.Addr().String())
	if err == nil {
		p.kill()
		t.Fatal("startProcess succeeded for a process that never listened")
	}
	if !errors.Is(err, errExitedEarly) {
		t.Fatalf("startProcess: %v; want errExitedEarly", err)
	}
}

// every calls f until stop, and not once after stop has returned; stop
// may be called twice (pingEvery's callers do).
func TestEvery(t *testing.T) {
	var calls atomic.Int64
	stop := every(2*time.Millisecond, func() { calls.Add(1) })
	for deadline := time.Now().Add(5 * time.Second); calls.Load() < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("f called %d times in 5 s at a 2 ms interval", calls.Load())
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	stopped := calls.Load()
	time.Sleep(20 * time.Millisecond)
	stop()
	if n := calls.Load(); n != stopped {
		t.Errorf("f called %d more times after stop returned", n-stopped)
	}
}
