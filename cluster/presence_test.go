package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/cluster"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// counts is a node's connections per uid, as its delivery hook would
// report them (cluster.Options.Online).
type counts struct {
	mu sync.Mutex
	m  map[string]int
}

func (c *counts) set(n *cluster.Node, uid string, v int) {
	c.mu.Lock()
	if c.m == nil {
		c.m = map[string]int{}
	}
	c.m[uid] = v
	c.mu.Unlock()
	n.OnlineChanged(uid)
}

func (c *counts) get(uid string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[uid]
}

// presenceNode joins a node that keeps its counts in Redis, beating every
// beat (0: the default), with its own client.
func presenceNode(t *testing.T, srv *redistest.Server, prefix string, id int, beat time.Duration) (*cluster.Node, *counts) {
	t.Helper()
	return presenceNodeOn(t, srv.Client(t), prefix, id, beat)
}

func presenceNodeOn(t *testing.T, client redis.UniversalClient, prefix string, id int, beat time.Duration) (*cluster.Node, *counts) {
	t.Helper()
	c := &counts{}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	n, err := cluster.Join(ctx, cluster.Options{Client: client, Prefix: prefix, NodeID: id,
		Local: &recorder{}, Log: (&logBuffer{}).Logger(), Online: c.get, Beat: beat})
	if err != nil {
		t.Fatalf("join node %d: %v", id, err)
	}
	t.Cleanup(func() { n.Close() }) // its error is the test's own doing where it matters
	return n, c
}

// waitOnline polls every node until each reports want connections of uid.
func waitOnline(t *testing.T, uid string, want int, nodes ...*cluster.Node) {
	t.Helper()
	for i, n := range nodes {
		var got int
		var err error
		waitUntil(t, "online count", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			got, err = n.OnlineEverywhere(ctx, uid)
			return err == nil && got == want
		})
		if err != nil || got != want {
			t.Fatalf("node %d: %s online %d, %v; want %d", i, uid, got, err, want)
		}
	}
}

// Every node answers for the whole deployment; a count that drops to zero
// and a node that leaves take their connections with them.
func TestOnlineEverywhere(t *testing.T) {
	srv := redistest.Start(t, redistest.Config{})
	prefix := newPrefix()
	a, ac := presenceNode(t, srv, prefix, 1, 0)
	b, bc := presenceNode(t, srv, prefix, 2, 0)
	other, oc := presenceNode(t, srv, newPrefix(), 1, 0) // another deployment on the same Redis

	ac.set(a, "10001", 1)
	bc.set(b, "10001", 2)
	bc.set(b, "10002", 1)
	oc.set(other, "10001", 5)
	waitOnline(t, "10001", 3, a, b)
	waitOnline(t, "10002", 1, a, b)
	waitOnline(t, "10003", 0, a, b)
	waitOnline(t, "10001", 5, other)

	bc.set(b, "10001", 0)
	waitOnline(t, "10001", 1, a, b)
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, "10002", 0, a)
	waitOnline(t, "10001", 1, a)
}

// A node that stops beating (it died) drops out three beats after its
// last one, and a node whose counts Redis lost writes them again.
func TestOnlineAfterFailures(t *testing.T) {
	const beat = 100 * time.Millisecond
	srv := redistest.Start(t, redistest.Config{})
	prefix := newPrefix()
	a, ac := presenceNode(t, srv, prefix, 1, beat)
	b, bc := presenceNode(t, srv, prefix, 2, beat)
	ac.set(a, "10001", 1)
	bc.set(b, "10001", 1)
	waitOnline(t, "10001", 2, a, b)

	// Redis without persistence restarts empty: both write their counts again.
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, "10001", 2, a, b)

	// d's client goes away: d can neither beat nor say goodbye.
	dClient := redis.NewClient(&redis.Options{Addr: srv.Addr})
	d, dc := presenceNodeOn(t, dClient, prefix, 3, beat)
	dc.set(d, "10001", 4)
	waitOnline(t, "10001", 6, a)
	if err := dClient.Close(); err != nil {
		t.Fatal(err)
	}
	waitOnline(t, "10001", 2, a, b)
}
