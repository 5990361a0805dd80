package broker

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisProbeTimeout bounds the PING of each scrape: well under Prometheus's
// default scrape timeout (10 s), long enough for a Redis under load.
const redisProbeTimeout = time.Second

// redisCollector exports, at each scrape, whether Redis answers a PING
// (inboxmq_redis_up) and the go-redis connection pool's counters. It is
// registered only when the broker has a Redis client (the Redis store,
// cluster signals, Redis events or notices).
type redisCollector struct {
	client                                  redis.UniversalClient
	up, hits, misses, timeouts, total, idle *prometheus.Desc
	stale, waits                            *prometheus.Desc
}

func newRedisCollector(client redis.UniversalClient) *redisCollector {
	d := func(name, help string) *prometheus.Desc { return prometheus.NewDesc(name, help, nil, nil) }
	return &redisCollector{
		client:   client,
		up:       d("inboxmq_redis_up", "1 when Redis answered a PING at this scrape within 1 s, else 0."),
		hits:     d("inboxmq_redis_pool_hits_total", "Redis requests that found an idle connection in the pool."),
		misses:   d("inboxmq_redis_pool_misses_total", "Redis requests that found no idle connection in the pool and dialled one."),
		timeouts: d("inboxmq_redis_pool_timeouts_total", "Redis requests that gave up waiting for a connection of the pool."),
		waits:    d("inboxmq_redis_pool_waits_total", "Redis requests that waited for a connection of the pool (all connections busy)."),
		stale:    d("inboxmq_redis_pool_stale_connections_total", "Connections the pool removed as stale (idle too long, or broken)."),
		total:    d("inboxmq_redis_pool_connections", "Connections in the Redis pool, idle and in use."),
		idle:     d("inboxmq_redis_pool_idle_connections", "Idle connections in the Redis pool."),
	}
}

func (c *redisCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.up, c.hits, c.misses, c.timeouts, c.waits, c.stale, c.total, c.idle} {
		ch <- d
	}
}

func (c *redisCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.WithValue(context.Background(), uncountedRequest{}, true), redisProbeTimeout)
	defer cancel()
	up := 0.0
	if c.client.Ping(ctx).Err() == nil {
		up = 1
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	s := c.client.PoolStats()
	if s == nil {
		return
	}
	counter := func(d *prometheus.Desc, v uint32) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v))
	}
	counter(c.hits, s.Hits)
	counter(c.misses, s.Misses)
	counter(c.timeouts, s.Timeouts)
	counter(c.waits, s.WaitCount)
	counter(c.stale, s.StaleConns)
	ch <- prometheus.MustNewConstMetric(c.total, prometheus.GaugeValue, float64(s.TotalConns))
	ch <- prometheus.MustNewConstMetric(c.idle, prometheus.GaugeValue, float64(s.IdleConns))
}

// uncountedRequest marks the context of the scrape's PING, which
// redisRequests leaves out: a scrape must not change what the benchmark
// reads per message.
type uncountedRequest struct{}
