package shallow

import (
	"runtime"
	"sync"
	"testing"
	"time"
)

func TestRun_CallsAndWaits(t *testing.T) {
	var p Pool
	defer p.Close()
	var got []int
	for i := range 3 {
		p.Run(func() { got = append(got, i) }) // no lock: Run returns after f
	}
	if len(got) != 3 || got[0] != 0 || got[2] != 2 {
		t.Fatalf("got %v, want [0 1 2]", got)
	}
}

// deep needs about 16 KB of stack, like a Pebble read.
//
//go:noinline
func deep(n int) byte {
	var buf [16 << 10]byte
	buf[n%len(buf)] = byte(n)
	return buf[(n*7)%len(buf)]
}

// TestRun_KeepsCallerStackSmall parks goroutines after a deep call, made
// through Run or directly, and compares the stack memory each group adds,
// measured after a GC has freed the stacks of the goroutines that ended:
// the direct callers' stacks grew past 16 KB, the others' did not.
func TestRun_KeepsCallerStackSmall(t *testing.T) {
	const n = 200
	release := make(chan struct{})
	defer close(release)
	stacks := func() uint64 {
		runtime.GC()
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return m.StackInuse
	}
	park := func(call func(func())) {
		var ready sync.WaitGroup
		for i := range n {
			ready.Add(1)
			go func() {
				call(func() { deep(i) })
				ready.Done()
				<-release
			}()
		}
		ready.Wait()
	}
	base := stacks()
	var pool Pool
	park(pool.Run)
	// The workers keep the stacks they grew until they end: end them, as
	// the sweep does after idleFor, to count the callers' stacks alone.
	endWorkers(t, &pool)
	withRun := stacks()
	park(func(f func()) { f() })
	withDirect := stacks()
	viaRun, direct := (withRun-min(withRun, base))/n, (withDirect-min(withDirect, withRun))/n
	t.Logf("stack held per parked goroutine after one GC: via Run %d B, direct %d B", viaRun, direct)
	// Halved once by the GC, a direct caller's stack is still 16 KiB; a
	// Run caller's never grew (it starts at 2 to 8 KiB). The margins
	// allow for stacks cached by the runtime.
	if direct < 12<<10 {
		t.Fatalf("direct deep calls hold %d B of stack per goroutine; the test expects about 16 KiB", direct)
	}
	if viaRun > 8<<10 {
		t.Fatalf("goroutines that called Run hold %d B of stack each, want at most 8 KiB", viaRun)
	}
}

// endWorkers ends every parked worker of p and waits for their goroutines.
func endWorkers(t *testing.T, p *Pool) {
	t.Helper()
	before := runtime.NumGoroutine()
	n := p.parked()
	p.expire(time.Now().Add(time.Hour))
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before-n; {
		if time.Now().After(deadline) {
			t.Fatalf("%d workers expired, goroutines %d -> %d", n, before, runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
}

func TestRun_ReusesAParkedWorker(t *testing.T) {
	var p Pool
	defer p.Close()
	for range 100 {
		p.Run(func() { deep(1) })
	}
	// A worker per call would leave 100 parked.
	if got := p.parked(); got != 1 {
		t.Errorf("after 100 calls one at a time %d workers are parked, want 1", got)
	}
}

func TestClose_EndsParkedAndReturningWorkers(t *testing.T) {
	var p Pool
	before := runtime.NumGoroutine()
	p.Run(func() {})
	inCall := make(chan struct{})
	release := make(chan struct{})
	go p.Run(func() { close(inCall); <-release })
	<-inCall
	p.Close()
	close(release)
	for deadline := time.Now().Add(5 * time.Second); runtime.NumGoroutine() > before; {
		if time.Now().After(deadline) {
			t.Fatalf("goroutines %d before, %d after Close: workers outlive it", before, runtime.NumGoroutine())
		}
		time.Sleep(time.Millisecond)
	}
	// Deny row: a call after Close still runs, on a worker that ends.
	ran := false
	p.Run(func() { ran = true })
	if !ran || p.parked() != 0 {
		t.Errorf("Run after Close: ran %v, %d parked; want true, 0", ran, p.parked())
	}
}

func TestPool_ExpireEndsOnlyWorkersIdleSinceTheCutoff(t *testing.T) {
	var p Pool
	old, recent := p.get(), p.get()
	p.put(old)
	old.parked = time.Now().Add(-time.Minute)
	p.put(recent)
	p.expire(time.Now().Add(-idleFor))
	if got := p.parked(); got != 1 {
		t.Fatalf("%d workers parked after the expiry, want 1 (the recent one)", got)
	}
	// Deny row: the recently parked worker is still the one handed out.
	if w := p.get(); w != recent {
		t.Error("expire ended the recently parked worker")
	}
	p.put(recent)
	p.expire(time.Now().Add(time.Hour))
	if got := p.parked(); got != 0 {
		t.Errorf("%d workers parked after expiring them all, want 0", got)
	}
}
