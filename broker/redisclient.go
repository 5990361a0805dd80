package broker

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/redis/go-redis/v9"
)

// newRedisClient builds the go-redis client the store, the cluster signals
// and the event channels share.
//
// Two of go-redis's defaults work against "a request is either stored or
// the client knows":
//   - It retries a command whose reply was lost and reports only the last
//     attempt's error, so a refused retry would hide that the first attempt
//     may have been stored. MaxRetries -1: the store and its callers decide.
//   - After PoolSize failed dials its pool stops dialling and returns the
//     last dial error, probing Redis once a second: for up to a second after
//     Redis is back every request fails. The dialer below keeps trying
//     every pollDial until its context ends instead of failing at the first
//     refusal, so a request waiting for Redis gets a connection within
//     pollDial of its return, and the pool's probe (bounded by the pool's
//     DialTimeout, a minute) ends as soon as Redis accepts. Requests still
//     give up at their own deadline (redis.timeout), and each dial attempt
//     at redis.dial_timeout.
//
// stop ends the dialer's polling: close it when the client closes, or
// go-redis's probe would keep a goroutine polling for up to a minute.
func newRedisClient(r RedisConfig, stop <-chan struct{}) redis.UniversalClient {
	return redis.NewUniversalClient(&redis.UniversalOptions{
		Addrs:                 r.Addresses,
		IsClusterMode:         r.Cluster,
		MasterName:            r.MasterName,
		Username:              r.Username,
		Password:              r.Password,
		DB:                    r.DB,
		Dialer:                pollingDialer(r.DialTimeout, stop),
		DialTimeout:           time.Minute,
		DialerRetries:         1,
		ReadTimeout:           r.Timeout,
		WriteTimeout:          r.Timeout,
		MaxRetries:            -1,
		ContextTimeoutEnabled: true,
	})
}

// pollDial is how often a dial to a Redis that refused is tried again.
const pollDial = 25 * time.Millisecond

// pollingDialer dials until it connects, ctx ends or stop closes, each
// attempt bounded by attempt; it returns the last attempt's error (a
// *net.OpError of op "dial": the store counts such a failure as "nothing
// sent").
func pollingDialer(attempt time.Duration, stop <-chan struct{}) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: attempt, KeepAlive: 5 * time.Minute}
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		for {
			conn, err := d.DialContext(ctx, network, addr)
			if err == nil {
				return conn, nil
			}
			var op *net.OpError
			if ctx.Err() != nil || !errors.As(err, &op) {
				return nil, err
			}
			t := time.NewTimer(pollDial)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil, err
			case <-stop:
				t.Stop()
				return nil, err
			case <-t.C:
			}
		}
	}
}
