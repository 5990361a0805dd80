package broker

import (
	"context"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// The scrape's PING says whether a real Redis answers, and is not counted
// as a request of the node (the benchmark reads that count per message);
// a command of the node is.
func TestRedisCollectorUpAndUncountedPing(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	cfg := DefaultConfig().Redis
	cfg.Addresses = []string{r.Addr}
	stop := make(chan struct{})
	defer close(stop)
	client, err := newRedisClient(cfg, stop)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	var counted redisRequests
	client.AddHook(&counted)
	m := &metrics{reg: prometheus.NewRegistry()}
	m.watchRedis(&counted, client)

	gauge := func(name string) (float64, bool) {
		t.Helper()
		fams, err := m.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == name && len(f.GetMetric()) == 1 {
				s := f.GetMetric()[0]
				if s.Gauge != nil {
					return s.Gauge.GetValue(), true
				}
				return s.GetCounter().GetValue(), true
			}
		}
		return 0, false
	}
	if v, ok := gauge("inboxmq_redis_up"); !ok || v != 1 {
		t.Fatalf("inboxmq_redis_up = %v (present %v) with Redis running, want 1", v, ok)
	}
	// The first PING dialled: go-redis's connection set-up (HELLO) is a
	// request the node makes anyway. Later scrapes reuse the connection.
	before := counted.requests.Load()
	for range 3 {
		gauge("inboxmq_redis_up")
	}
	if n := counted.requests.Load() - before; n != 0 {
		t.Errorf("3 scrapes' PINGs counted as %d requests, want 0", n)
	}
	if v, ok := gauge("inboxmq_redis_pool_connections"); !ok || v < 1 {
		t.Errorf("inboxmq_redis_pool_connections = %v (present %v) after a PING, want at least 1", v, ok)
	}
	if err := client.Set(context.Background(), "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if n := counted.requests.Load() - before; n != 1 {
		t.Errorf("one SET counted as %d requests, want 1", n)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	if v, ok := gauge("inboxmq_redis_up"); !ok || v != 0 {
		t.Errorf("inboxmq_redis_up = %v (present %v) with Redis killed, want 0", v, ok)
	}
}
