package broker

import (
	"context"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// redisRequests counts what this node asks of Redis, as a go-redis hook:
// requests (round trips: a command sent alone, or a pipeline or
// transaction sent as one) and the commands they carry. Commands a Lua
// script runs inside Redis are not seen here (INFO commandstats counts
// them); a pipeline that a Redis Cluster client splits over several
// masters counts as one request. Subscriptions (the cluster signals, the
// notification channel) are not requests: they are pushed to the node.
//
// It is what decides how many nodes one Redis can serve, so it is
// exported (inboxmq_redis_requests_total, inboxmq_redis_commands_total)
// and the benchmark reads it per message.
type redisRequests struct {
	requests atomic.Int64
	commands atomic.Int64
}

var _ redis.Hook = (*redisRequests)(nil)

func (r *redisRequests) DialHook(next redis.DialHook) redis.DialHook { return next }

func (r *redisRequests) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if ctx.Value(uncountedRequest{}) != nil { // the scrape's PING (redismetrics.go)
			return next(ctx, cmd)
		}
		r.requests.Add(1)
		r.commands.Add(1)
		return next(ctx, cmd)
	}
}

func (r *redisRequests) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		r.requests.Add(1)
		r.commands.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// watchRedis exports what r counted, and client's health and pool.
func (m *metrics) watchRedis(r *redisRequests, client redis.UniversalClient) {
	m.reg.MustRegister(newRedisCollector(client))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "inboxmq_redis_requests_total",
		Help: "Requests (round trips) this node sent to Redis: a command alone or a pipeline.",
	}, func() float64 { return float64(r.requests.Load()) }))
	m.reg.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{
		Name: "inboxmq_redis_commands_total",
		Help: "Commands this node sent to Redis (not counting those its Lua scripts run inside Redis).",
	}, func() float64 { return float64(r.commands.Load()) }))
}
