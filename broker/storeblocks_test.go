package broker

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inboxmq/inboxmq/inbox"
)

// blockingStore checks block lists in Submit when checks says so.
type blockingStore struct {
	failingStore
	checks bool
}

func (s blockingStore) SubmitChecksBlocks() bool { return s.checks }

// The measuring decorator passes on whether the store checks block lists
// inside Submit: the messaging service, which sees only the decorator,
// otherwise checks them with a request of its own per direct message.
func TestObservedStoreForwardsBlockingSubmit(t *testing.T) {
	tests := []struct {
		name  string
		store inbox.Store
		want  bool
	}{
		{"store that checks (Redis)", blockingStore{checks: true}, true},
		{"deny: store that says it does not", blockingStore{checks: false}, false},
		{"deny: store without the method (Pebble)", failingStore{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &metrics{reg: prometheus.NewRegistry()}
			s, ok := m.observeStore(tt.store, "redis").(inbox.BlockingSubmitter)
			if !ok {
				t.Fatal("the decorator is not an inbox.BlockingSubmitter")
			}
			if got := s.SubmitChecksBlocks(); got != tt.want {
				t.Errorf("SubmitChecksBlocks() = %v, want %v", got, tt.want)
			}
		})
	}
}
