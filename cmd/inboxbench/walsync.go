package main

import (
	"fmt"
	"math"
	"slices"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// walSyncMetric is how long an embedded-store inboxmq's WAL syncs take: a
// message's PUBACK waits for one, so a run's latency tail is read beside it.
const walSyncMetric = "inboxmq_store_wal_fsync_duration_seconds"

// walSyncs is a reading of walSyncMetric: cumulative counts by upper bound.
type walSyncs struct {
	count  float64
	bounds []float64 // ascending
	cum    []float64 // cum[i]: syncs that took at most bounds[i]
}

// WALSyncs reads the broker's WAL sync histogram; ok is false when it has
// none (Mosquitto, the Redis store, a build before the metric).
func (t *Target) WALSyncs() (w walSyncs, ok bool, err error) {
	if t.Kind != Inboxmq || t.Admin == "" {
		return w, false, nil
	}
	body, err := t.adminGet("/metrics")
	if err != nil {
		return w, false, err
	}
	defer body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(body)
	if err != nil {
		return w, false, fmt.Errorf("parse metrics: %w", err)
	}
	f := families[walSyncMetric]
	if f == nil || len(f.GetMetric()) != 1 || f.GetMetric()[0].GetHistogram() == nil {
		return w, false, nil
	}
	h := f.GetMetric()[0].GetHistogram()
	w.count = float64(h.GetSampleCount())
	for _, b := range h.GetBucket() {
		w.bounds = append(w.bounds, b.GetUpperBound())
		w.cum = append(w.cum, float64(b.GetCumulativeCount()))
	}
	return w, true, nil
}

// since is what happened between before and w: the syncs, and the upper
// bound of the bucket that holds quantile q of them (+Inf past the last).
func (w walSyncs) since(before walSyncs, q float64) (n, bound float64) {
	n = w.count - before.count
	if n <= 0 || !slices.Equal(w.bounds, before.bounds) {
		return n, math.NaN()
	}
	for i, b := range w.bounds {
		if w.cum[i]-before.cum[i] >= q*n {
			return n, b
		}
	}
	return n, math.Inf(1)
}
