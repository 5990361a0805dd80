package redistest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// clusterTimeout bounds building a cluster: creating it and waiting until
// every node serves all slots.
const clusterTimeout = 30 * time.Second

// Cluster is a Redis Cluster of masters without replicas, each a Server
// in cluster mode.
type Cluster struct {
	Nodes []*Server
}

// LaunchCluster starts masters (at least 3) cluster-mode servers in
// subdirectories of dir, joins them with redis-cli --cluster create and
// waits until every node reports the cluster ok. The caller must Kill it.
func LaunchCluster(dir string, masters int) (*Cluster, error) {
	if masters < 3 {
		return nil, fmt.Errorf("redistest: a cluster needs at least 3 masters, not %d", masters)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		return nil, fmt.Errorf("redistest: redis-cli is not installed (apt-get install -y redis-server, or make deps): %w", err)
	}
	c := &Cluster{}
	fail := func(err error) (*Cluster, error) { return nil, errors.Join(err, c.Kill()) }
	for i := range masters {
		nodeDir := filepath.Join(dir, "node"+strconv.Itoa(i))
		if err := os.MkdirAll(nodeDir, 0o755); err != nil {
			return fail(fmt.Errorf("redistest: %w", err))
		}
		s, err := Launch(nodeDir, Config{Cluster: true})
		if err != nil {
			return fail(err)
		}
		c.Nodes = append(c.Nodes, s)
	}

	ctx, cancel := context.WithTimeout(context.Background(), clusterTimeout)
	defer cancel()
	args := append([]string{"--cluster", "create"}, c.Addrs()...)
	args = append(args, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, args...).CombinedOutput(); err != nil {
		return fail(fmt.Errorf("redistest: redis-cli --cluster create: %w\n%s", err, out))
	}
	if err := c.waitOK(ctx); err != nil {
		return fail(err)
	}
	return c, nil
}

// StartCluster starts a cluster of masters in a temporary directory and
// kills it when tb ends. It fails tb when redis-server or redis-cli is
// missing or the cluster does not form.
func StartCluster(tb testing.TB, masters int) *Cluster {
	tb.Helper()
	c, err := LaunchCluster(tb.TempDir(), masters)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		if err := c.Kill(); err != nil {
			tb.Error(err)
		}
	})
	return c
}

// waitOK polls every node until it knows all the others and serves all
// 16384 slots: redis-cli returns once the slots are assigned, a moment
// before every node agrees the cluster is up.
func (c *Cluster) waitOK(ctx context.Context) error {
	want := []string{
		"cluster_state:ok",
		"cluster_slots_ok:16384",
		"cluster_known_nodes:" + strconv.Itoa(len(c.Nodes)),
	}
	for _, n := range c.Nodes {
		for {
			info, err := Do(n.Addr, time.Second, "CLUSTER", "INFO")
			if err == nil && containsAll(info, want) {
				break
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("redistest: cluster node %s not ready (%v): %v\n%s", n.Addr, ctx.Err(), err, info)
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return nil
}

func containsAll(s string, subs []string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// Addrs returns the nodes' addresses.
func (c *Cluster) Addrs() []string {
	addrs := make([]string, len(c.Nodes))
	for i, n := range c.Nodes {
		addrs[i] = n.Addr
	}
	return addrs
}

// Kill kills every node.
func (c *Cluster) Kill() error {
	var errs []error
	for _, n := range c.Nodes {
		errs = append(errs, n.Kill())
	}
	return errors.Join(errs...)
}

// Client returns a cluster client of c, closed when tb ends. Context
// deadlines apply to its network waits.
func (c *Cluster) Client(tb testing.TB) *redis.ClusterClient {
	tb.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs(), ContextTimeoutEnabled: true})
	tb.Cleanup(func() {
		if err := cc.Close(); err != nil {
			tb.Error(err)
		}
	})
	return cc
}
