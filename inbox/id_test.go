package inbox

import (
	"testing"
	"time"
)

var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

func TestIDGenLayout(t *testing.T) {
	now := epoch.Add(1234 * time.Millisecond)
	g := NewIDGen(5, 0)
	id := g.Next(now)
	if got, want := id, uint64(1234)<<22|5<<12; got != want {
		t.Fatalf("id = %d, want %d", got, want)
	}
	if got, want := g.Next(now), id+1; got != want {
		t.Fatalf("second id in the same ms = %d, want %d", got, want)
	}
}

func TestIDGenNext(t *testing.T) {
	ms := func(n int64) time.Time { return epoch.Add(time.Duration(n) * time.Millisecond) }
	id := func(ms, node, seq uint64) uint64 { return ms<<22 | node<<12 | seq }
	tests := []struct {
		name string
		node int
		last uint64
		now  time.Time
		want uint64
	}{
		{"fresh", 1, 0, ms(10), id(10, 1, 0)},
		{"clock ahead of last", 1, id(5, 1, 7), ms(10), id(10, 1, 0)},
		{"same ms counts on", 1, id(10, 1, 7), ms(10), id(10, 1, 8)},
		{"clock went back", 1, id(50, 1, 7), ms(10), id(50, 1, 8)},
		{"seq overflow moves to next ms", 1, id(10, 1, 4095), ms(10), id(11, 1, 0)},
		{"last from lower node same ms", 3, id(10, 1, 9), ms(10), id(10, 3, 0)},
		{"last from higher node same ms", 1, id(10, 3, 9), ms(10), id(11, 1, 0)},
		{"before epoch clamps to 0", 2, 0, epoch.Add(-time.Hour), id(0, 2, 0)},
		{"id 0 is never issued", 0, 0, epoch, id(0, 0, 1)},
		{"max node", 1023, 0, ms(1), id(1, 1023, 0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			g := NewIDGen(tt.node, tt.last)
			got := g.Next(tt.now)
			if got != tt.want {
				t.Fatalf("Next = %d (ms %d node %d seq %d), want %d", got, got>>22, got>>12&1023, got&4095, tt.want)
			}
			if got <= tt.last {
				t.Fatalf("Next = %d, not greater than last %d", got, tt.last)
			}
		})
	}
}

func TestIDGenStrictlyIncreasing(t *testing.T) {
	g := NewIDGen(7, 0)
	now := epoch.Add(time.Hour)
	var prev uint64
	// 10000 ids in one millisecond overflow the 12-bit sequence twice;
	// the clock stepping back must not matter either.
	for i := range 10000 {
		at := now
		if i%100 == 0 {
			at = now.Add(-time.Minute)
		}
		id := g.Next(at)
		if id <= prev {
			t.Fatalf("id %d = %d, not greater than previous %d", i, id, prev)
		}
		if node := id >> 12 & 1023; node != 7 {
			t.Fatalf("id %d has node %d, want 7", i, node)
		}
		prev = id
	}
}

func TestIDGenDistinctNodes(t *testing.T) {
	a, b := NewIDGen(1, 0), NewIDGen(2, 0)
	now := epoch.Add(time.Second)
	seen := make(map[uint64]bool)
	for range 5000 {
		for _, g := range []*IDGen{a, b} {
			id := g.Next(now)
			if seen[id] {
				t.Fatalf("duplicate id %d", id)
			}
			seen[id] = true
		}
	}
}

func TestNewIDGenBadNode(t *testing.T) {
	for _, node := range []int{-1, 1024} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewIDGen(%d, 0) did not panic", node)
				}
			}()
			NewIDGen(node, 0)
		}()
	}
}

func BenchmarkIDGenNext(b *testing.B) {
	b.ReportAllocs()
	g := NewIDGen(1, 0)
	now := time.Now()
	for b.Loop() {
		g.Next(now)
	}
}
