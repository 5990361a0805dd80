package broker

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// After Redis has been down long enough for go-redis to stop dialling
// (its pool then fails every call with the last dial error and probes once
// a second), the client works again as soon as Redis accepts connections:
// the pool's probe uses the polling dialer, which connects within a poll
// of Redis's return. Calls made while Redis is down fail with a dial
// error, which the store reports as "not stored".
func TestRedisClientBackPromptly(t *testing.T) {
	r := redistest.Start(t, redistest.Config{})
	cfg := DefaultConfig().Redis
	cfg.Addresses = []string{r.Addr}
	stop := make(chan struct{})
	defer close(stop)
	c, err := newRedisClient(cfg, stop)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx := context.Background()
	if err := c.Ping(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := r.Kill(); err != nil {
		t.Fatal(err)
	}
	// Enough failed dials to open go-redis's dial circuit (PoolSize).
	for range 40 {
		cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		err := c.Ping(cctx).Err()
		cancel()
		var op *net.OpError
		if err == nil || !(errors.As(err, &op) || err == context.DeadlineExceeded) {
			t.Fatalf("ping with Redis down = %v, want a dial error or the pool giving up", err)
		}
	}
	if err := r.Restart(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	for {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		err := c.Ping(cctx).Err()
		cancel()
		if err == nil {
			break
		}
		if time.Since(back) > 10*time.Second {
			t.Fatalf("Redis is back but calls still fail: %v", err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	// go-redis's own probe runs once a second: the 300 ms bound fails
	// about two runs in three without the polling dialer.
	if d := time.Since(back); d > 300*time.Millisecond {
		t.Errorf("first call succeeded %v after Redis accepted connections again", d)
	}
	t.Logf("calls work again %v after Redis accepted connections", time.Since(back).Round(time.Millisecond))
}
