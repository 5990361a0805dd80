package main

import (
	"math"
	"testing"
)

func TestWALSyncsSince(t *testing.T) {
	bounds := []float64{0.001, 0.01, 0.1}
	before := walSyncs{count: 10, bounds: bounds, cum: []float64{10, 10, 10}}
	tests := []struct {
		name      string
		after     walSyncs
		q         float64
		wantN     float64
		wantBound float64 // NaN: no answer
	}{
		{"p50 in the first bucket", walSyncs{110, bounds, []float64{70, 100, 110}}, 0.5, 100, 0.001},
		{"p99 in the last bucket", walSyncs{110, bounds, []float64{70, 100, 110}}, 0.99, 100, 0.1},
		{"p99 past every bound", walSyncs{110, bounds, []float64{70, 100, 105}}, 0.99, 100, math.Inf(1)},
		// Deny rows: nothing to read a quantile from.
		{"no syncs", walSyncs{10, bounds, []float64{10, 10, 10}}, 0.99, 0, math.NaN()},
		{"other buckets", walSyncs{110, []float64{0.001, 0.1}, []float64{70, 110}}, 0.99, 100, math.NaN()},
	}
	for _, tc := range tests {
		n, bound := tc.after.since(before, tc.q)
		if n != tc.wantN || !(bound == tc.wantBound || math.IsNaN(bound) && math.IsNaN(tc.wantBound)) {
			t.Errorf("%s: since = %v, %v; want %v, %v", tc.name, n, bound, tc.wantN, tc.wantBound)
		}
	}
}
