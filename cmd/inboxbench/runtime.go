package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// RuntimeStats are Go runtime figures of an inboxmq process, read from
// the Prometheus Go collector on its admin listener's /metrics.
type RuntimeStats struct {
	Goroutines   float64
	HeapAlloc    float64 // bytes of heap objects not yet freed (live right after a GC)
	HeapInuse    float64 // bytes in heap spans holding at least one object
	HeapIdle     float64 // bytes in heap spans holding none
	HeapReleased float64 // of HeapIdle, bytes returned to the OS
	StackInuse   float64 // goroutine stacks
	Sys          float64 // everything the runtime has mapped
	NextGC       float64 // heap size that triggers the next GC
	GCs          float64 // GC cycles so far
}

// runtimeMetrics maps each RuntimeStats field to its metric.
var runtimeMetrics = map[string]func(*RuntimeStats) *float64{
	"go_goroutines":                   func(s *RuntimeStats) *float64 { return &s.Goroutines },
	"go_memstats_heap_alloc_bytes":    func(s *RuntimeStats) *float64 { return &s.HeapAlloc },
	"go_memstats_heap_inuse_bytes":    func(s *RuntimeStats) *float64 { return &s.HeapInuse },
	"go_memstats_heap_idle_bytes":     func(s *RuntimeStats) *float64 { return &s.HeapIdle },
	"go_memstats_heap_released_bytes": func(s *RuntimeStats) *float64 { return &s.HeapReleased },
	"go_memstats_stack_inuse_bytes":   func(s *RuntimeStats) *float64 { return &s.StackInuse },
	"go_memstats_sys_bytes":           func(s *RuntimeStats) *float64 { return &s.Sys },
	"go_memstats_next_gc_bytes":       func(s *RuntimeStats) *float64 { return &s.NextGC },
	"go_gc_duration_seconds_count":    func(s *RuntimeStats) *float64 { return &s.GCs },
}

// Runtime reads the broker's Go runtime figures; inboxmq only.
func (t *Target) Runtime() (RuntimeStats, error) {
	var s RuntimeStats
	body, err := t.adminGet("/metrics")
	if err != nil {
		return s, err
	}
	defer body.Close()
	found := 0
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		field := runtimeMetrics[name]
		if !ok || field == nil {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			return s, fmt.Errorf("metrics: %s: %w", name, err)
		}
		*field(&s) = v
		found++
	}
	if err := sc.Err(); err != nil {
		return s, fmt.Errorf("read metrics: %w", err)
	}
	if found != len(runtimeMetrics) {
		return s, fmt.Errorf("metrics: %d of the %d Go runtime figures found", found, len(runtimeMetrics))
	}
	return s, nil
}

// CollectGarbage runs a full GC in the broker (a heap profile with gc=1)
// and returns the profile's size in bytes.
func (t *Target) CollectGarbage() (int64, error) {
	body, err := t.adminGet("/debug/pprof/heap?gc=1")
	if err != nil {
		return 0, err
	}
	defer body.Close()
	n, err := io.Copy(io.Discard, body)
	if err != nil {
		return n, fmt.Errorf("read heap profile: %w", err)
	}
	return n, nil
}

func (t *Target) adminGet(path string) (io.ReadCloser, error) {
	if t.Admin == "" {
		return nil, fmt.Errorf("%s has no admin listener", t.Kind)
	}
	c := http.Client{Timeout: time.Minute}
	resp, err := c.Get("http://" + t.Admin + path)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("GET %s: %s", path, resp.Status)
	}
	return resp.Body, nil
}

// runtimeSamples are an inboxmq broker's runtime figures at the points of
// the conns scenario; nothing is read from Mosquitto.
type runtimeSamples struct {
	on         bool
	before     RuntimeStats // fresh broker
	liveBefore RuntimeStats // fresh broker after a forced GC
	opened     RuntimeStats // connections opened
	held       RuntimeStats // after the hold
	live       RuntimeStats // after the hold and a forced GC
}

func (s *runtimeSamples) baseline(t *Target) error {
	if t.Kind != Inboxmq {
		return nil
	}
	s.on = true
	var err error
	if s.before, err = t.Runtime(); err != nil {
		return err
	}
	if _, err := t.CollectGarbage(); err != nil {
		return err
	}
	s.liveBefore, err = t.Runtime()
	return err
}

func (s *runtimeSamples) sample(t *Target, into *RuntimeStats) error {
	if !s.on {
		return nil
	}
	v, err := t.Runtime()
	*into = v
	return err
}

// report adds the per-connection runtime figures for n connections:
// after the hold as the runtime left them, and after a forced GC.
func (s *runtimeSamples) report(r *Result, n float64) {
	kb := func(after, before float64) float64 { return (after - before) / n / 1000 }
	h, b := s.held, s.before
	r.add("goroutines_per_conn", "goroutines per connection", "", "", (h.Goroutines-b.Goroutines)/n)
	r.add("stack_per_conn_kb", "Go stacks per connection after the hold", "KB", "", kb(h.StackInuse, b.StackInuse))
	r.add("heap_inuse_per_conn_kb", "Go heap spans in use per connection after the hold", "KB", "", kb(h.HeapInuse, b.HeapInuse))
	r.add("heap_kept_per_conn_kb", "free heap not returned to the OS per connection after the hold", "KB", "",
		kb(h.HeapIdle-h.HeapReleased, b.HeapIdle-b.HeapReleased))
	r.add("gc_cycles", "GC cycles while opening and holding", "", "", h.GCs-s.liveBefore.GCs)
	l, lb := s.live, s.liveBefore
	r.add("live_stack_per_conn_kb", "Go stacks per connection after a forced GC", "KB", "", kb(l.StackInuse, lb.StackInuse))
	r.add("live_heap_per_conn_kb", "live Go heap per connection (after a forced GC)", "KB", "", kb(l.HeapAlloc, lb.HeapAlloc))
	r.add("heap_kept_gc_per_conn_kb", "free heap not returned to the OS per connection after a forced GC", "KB", "",
		kb(l.HeapIdle-l.HeapReleased, lb.HeapIdle-lb.HeapReleased))
}
