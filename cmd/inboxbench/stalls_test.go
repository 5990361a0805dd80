package main

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a clock whose sleeps advance it by the duration asked plus
// what the test adds to each call in turn.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	extra []time.Duration // added to the sleeps, one per call; then 0
	calls int
	slept chan struct{} // one token per sleep
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(d time.Duration) {
	c.mu.Lock()
	if c.calls < len(c.extra) {
		d += c.extra[c.calls]
	}
	c.calls++
	c.now = c.now.Add(d)
	c.mu.Unlock()
	c.slept <- struct{}{}
}

func TestStallProbe_RecordsLateWakeups(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	c := &fakeClock{now: t0, slept: make(chan struct{}),
		extra: []time.Duration{0, 5 * time.Millisecond, stallLate - time.Microsecond, 0, stallLate}}
	p := startStallProbe(c.Sleep, c.Now)
	for range len(c.extra) + 2 {
		<-c.slept
	}
	go func() { // the probe may sleep once more before it sees the stop
		for range c.slept {
		}
	}()
	got, watched := p.Stop()
	close(c.slept)
	if least := 7*probeSleep + 5*time.Millisecond + 2*stallLate - time.Microsecond; watched < least {
		t.Errorf("watched %v, want at least the %v its sleeps took", watched, least)
	}
	want := []stall{
		{At: t0.Add(2*probeSleep + 5*time.Millisecond), Late: 5 * time.Millisecond},
		{At: t0.Add(5*probeSleep + 5*time.Millisecond + stallLate - time.Microsecond + stallLate), Late: stallLate},
	}
	if len(got) != len(want) {
		t.Fatalf("stalls %v, want %v (a wake-up just under %s late is not one)", got, want, stallLate)
	}
	for i := range want {
		if !got[i].At.Equal(want[i].At) || got[i].Late != want[i].Late {
			t.Errorf("stall %d = %v, want %v", i, got[i], want[i])
		}
	}
}

func TestInStall(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	// One stall: the harness ran nothing between 100 and 110 ms.
	stalls := []stall{{At: at(110), Late: 10 * time.Millisecond}}
	for _, tc := range []struct {
		name     string
		sent, ms int
		in       bool
	}{
		{"sent before, received during", 95, 8, true},
		{"sent during, received after", 105, 20, true},
		{"spans the stall", 90, 30, true},
		{"within the stall", 102, 5, true},
		{"received before it began", 80, 19, false},
		{"received as it began", 80, 20, false},
		{"sent as it ended", 110, 9, false},
		{"sent after it ended", 120, 40, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			slow := []slowMsg{{Sent: at(tc.sent), Latency: time.Duration(tc.ms) * time.Millisecond}}
			if got := inStall(slow, stalls) == 1; got != tc.in {
				t.Errorf("in a stall: %v, want %v", got, tc.in)
			}
		})
	}
	if n := inStall([]slowMsg{{Sent: at(95), Latency: 8 * time.Millisecond}}, nil); n != 0 {
		t.Errorf("with no stalls: %d in a stall", n)
	}
}

func TestAddStalls(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 8, 0, 0, 0, time.UTC)
	slow := []slowMsg{
		{Sent: t0, Latency: 8 * time.Millisecond},
		{Sent: t0.Add(time.Second), Latency: 6 * time.Millisecond},
	}
	stalls := []stall{{At: t0.Add(5 * time.Millisecond), Late: 4 * time.Millisecond}}
	var r Result
	r.addStalls(stalls, slow, 10*time.Second)
	figures := map[string]float64{}
	for _, f := range r.Figures {
		figures[f.Key] = f.Value
	}
	for key, want := range map[string]float64{"stalls": 1, "stall_max_ms": 4, "slow_msgs": 2, "slow_in_stall_pct": 50} {
		if got, ok := figures[key]; !ok || got != want {
			t.Errorf("%s = %v (reported: %v), want %v", key, got, ok, want)
		}
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "stalled 1 times") {
		t.Errorf("notes %q, want one about the stall", r.Notes)
	}

	var quiet Result
	quiet.addStalls(nil, nil, 10*time.Second)
	for _, f := range quiet.Figures {
		if f.Key == "slow_in_stall_pct" {
			t.Errorf("slow_in_stall_pct reported without slow messages")
		}
	}
	if len(quiet.Notes) != 0 {
		t.Errorf("notes %q without stalls", quiet.Notes)
	}
}

func TestAppendSlowLog(t *testing.T) {
	t0 := time.UnixMilli(1796540000000)
	path := filepath.Join(t.TempDir(), "slow.log")
	slow := []slowMsg{
		{Sent: t0, Latency: 7500 * time.Microsecond, Sender: 3, Recipient: 41},
		{Sent: t0.Add(20 * time.Millisecond), Latency: 6 * time.Millisecond, Sender: 9, Recipient: 2},
	}
	stalls := []stall{{At: t0.Add(14 * time.Millisecond), Late: 4 * time.Millisecond}} // began at +10 ms
	if err := appendSlowLog(path, "dm-paced", "inboxmq", slow, stalls); err != nil {
		t.Fatal(err)
	}
	if err := appendSlowLog(path, "dm-paced", "mosquitto", nil, nil); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "# dm-paced inboxmq\n" +
		"slow 1796540000000 7.5 3 41\n" +
		"stall 1796540000014 4.0\n" +
		"slow 1796540000020 6.0 9 2\n" +
		"# dm-paced mosquitto\n"
	if string(b) != want {
		t.Errorf("log:\n%s\nwant:\n%s", b, want)
	}
	if err := appendSlowLog(filepath.Join(t.TempDir(), "missing", "slow.log"), "dm-paced", "inboxmq", slow, nil); err == nil {
		t.Error("no error for a file in a missing directory")
	}
}
