package broker

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/inboxmq/inboxmq/inbox"
)

// failingStore answers IsBlocked with err and WriteAcks with nil; every
// other method is left to the nil embedded interface (never called here).
type failingStore struct {
	inbox.Store
	err error
}

func (s failingStore) IsBlocked(context.Context, string, string) (bool, error) { return false, s.err }

type ackingStore struct{ failingStore }

func (ackingStore) WriteAcks(context.Context, []inbox.CursorPos, []inbox.PushRange) error { return nil }

// The decorator counts a call's error as a store error only when the
// store failed, not when the caller was refused or gave up.
func TestObservedStoreCountsStoreFaultsOnly(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantError float64
	}{
		{"success", nil, 0},
		{"timeout", fmt.Errorf("redis: %w", context.DeadlineExceeded), 1},
		{"io error", errors.New("pebble: disk full"), 1},
		// Deny rows: answers that are errors to the caller only.
		{"caller gave up", fmt.Errorf("wrapped: %w", context.Canceled), 0},
		{"block list full", inbox.ErrTooManyBlocks, 0},
		{"request key too long", inbox.ErrBadRequestKey, 0},
		{"recipient blocked the sender", fmt.Errorf("%w: %w", inbox.ErrNotStored, inbox.ErrBlocked), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := &metrics{reg: prometheus.NewRegistry()}
			s := m.observeStore(failingStore{err: tc.err}, "redis")
			if _, err := s.IsBlocked(context.Background(), "alice", "bob"); !errors.Is(err, tc.err) {
				t.Fatalf("IsBlocked returned %v, want the store's %v unchanged", err, tc.err)
			}
			errs := sample(t, m.reg, "inboxmq_store_errors_total", "redis", "is_blocked").GetCounter().GetValue()
			if errs != tc.wantError {
				t.Errorf("inboxmq_store_errors_total{op=is_blocked} = %v, want %v", errs, tc.wantError)
			}
			for _, op := range storeOps { // every op's series, from the start
				sample(t, m.reg, "inboxmq_store_errors_total", "redis", op)
			}
			if got := histogramCount(t, m.reg, "redis", "is_blocked"); got != 1 {
				t.Errorf("is_blocked latency observed %d times, want 1", got)
			}
		})
	}
}

// The decorator is an inbox.AckWriter exactly when the store under it is
// one (the delivery hook batches acks only then), and the backup still
// finds the embedded store under it.
func TestObservedStoreKeepsOptionalInterfaces(t *testing.T) {
	m := &metrics{reg: prometheus.NewRegistry()}
	if _, ok := m.observeStore(failingStore{}, "pebble").(inbox.AckWriter); ok {
		t.Error("a store without WriteAcks became an AckWriter once measured")
	}
	m = &metrics{reg: prometheus.NewRegistry()}
	s := m.observeStore(ackingStore{}, "redis")
	aw, ok := s.(inbox.AckWriter)
	if !ok {
		t.Fatal("a store with WriteAcks lost it once measured")
	}
	if err := aw.WriteAcks(context.Background(), nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := histogramCount(t, m.reg, "redis", "write_acks"); got != 1 {
		t.Errorf("write_acks observed %d times, want 1", got)
	}
	if _, ok := embeddedStore(s); ok {
		t.Error("embeddedStore found a Pebble store under a Redis-like one")
	}
	if len(storeOps) != int(numStoreOps) || storeOps[numStoreOps-1] != "is_blocked" {
		t.Errorf("storeOps and the storeOp constants are out of step")
	}
}

func histogramCount(t *testing.T, reg *prometheus.Registry, backend, op string) uint64 {
	t.Helper()
	return sample(t, reg, "inboxmq_store_operation_duration_seconds", backend, op).GetHistogram().GetSampleCount()
}

// sample returns the series of family name for backend and op.
func sample(t *testing.T, reg *prometheus.Registry, name, backend, op string) *dto.Metric {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, s := range f.GetMetric() {
			l := map[string]string{}
			for _, p := range s.GetLabel() {
				l[p.GetName()] = p.GetValue()
			}
			if l["backend"] == backend && l["op"] == op {
				return s
			}
		}
	}
	t.Fatalf("no %s series for backend %s op %s", name, backend, op)
	return nil
}

// The decorator's cost per store call, on a store that answers at once.
func BenchmarkObservedStore_IsBlocked(b *testing.B) {
	m := &metrics{reg: prometheus.NewRegistry()}
	s := m.observeStore(failingStore{}, "pebble")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.IsBlocked(ctx, "alice", "bob"); err != nil {
			b.Fatal(err)
		}
	}
}
