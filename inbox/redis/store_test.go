package redisstore

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/storetest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// One redis-server serves the tests that need no server of their own;
// each store on it gets a fresh key prefix.
var (
	sharedOnce sync.Once
	sharedDir  string
	shared     *redistest.Server
	sharedErr  error
)

func TestMain(m *testing.M) {
	// Tests that stop Redis make go-redis log every failed dial; -v shows them.
	flag.Parse()
	if !testing.Verbose() {
		redis.SetLogger(quietLogger{})
	}
	code := m.Run()
	if shared != nil {
		if err := shared.Kill(); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	if sharedDir != "" {
		if err := os.RemoveAll(sharedDir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			code = 1
		}
	}
	os.Exit(code)
}

// quietLogger drops go-redis's log lines.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// sharedServer starts the shared server on first use.
func sharedServer(tb testing.TB) *redistest.Server {
	tb.Helper()
	sharedOnce.Do(func() {
		sharedDir, sharedErr = os.MkdirTemp("", "redisstore-test-")
		if sharedErr == nil {
			shared, sharedErr = redistest.Launch(sharedDir, redistest.Config{})
		}
	})
	if sharedErr != nil {
		tb.Fatal(sharedErr)
	}
	return shared
}

var prefixSeq atomic.Int64

// newPrefix returns a key prefix no other store of this test run uses.
func newPrefix() string { return "test" + strconv.FormatInt(prefixSeq.Add(1), 10) + ":" }

// openStore opens a store on c and closes it when tb ends, unless the test
// closed it already.
func openStore(tb testing.TB, c redis.UniversalClient, prefix string, opts inbox.Options) *Store {
	tb.Helper()
	s, err := Open(context.Background(), Options{Client: c, Prefix: prefix, Inbox: opts})
	if err != nil {
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, inbox.ErrClosed) {
			tb.Errorf("Close: %v", err)
		}
	})
	return s
}

// openLockStore opens a store that appends with the Cluster protocol
// (locks, one script per inbox) on any Redis.
func openLockStore(tb testing.TB, c redis.UniversalClient, prefix string, opts inbox.Options) *Store {
	s := openStore(tb, c, prefix, opts)
	s.cluster = true
	return s
}

func TestStore(t *testing.T) {
	c := sharedServer(t).Client(t)
	storetest.Run(t, func(t *testing.T, opts inbox.Options) inbox.Store {
		return openStore(t, c, newPrefix(), opts)
	})
}

// TestCluster runs the suite and the two-node test on a 3-master Redis
// Cluster, where an Append's inboxes are usually in different slots.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t, 3)
	cc := cl.Client(t)
	ctx := context.Background()
	k := keys{prefix: "any:"}
	sx, err := cc.ClusterKeySlot(ctx, k.base("x")+sufLog).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	sy, err := cc.ClusterKeySlot(ctx, k.base("y")+sufLog).Result()
	if err != nil {
		t.Fatalf("CLUSTER KEYSLOT: %v", err)
	}
	if sx == sy {
		t.Fatalf("inboxes x and y share slot %d: the test would not cross slots", sx)
	}
	t.Run("Suite", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, opts inbox.Options) inbox.Store {
			return openStore(t, cc, newPrefix(), opts)
		})
	})
	t.Run("TwoNodes", func(t *testing.T) { testTwoNodes(t, cc) })
	t.Run("OddUIDs", func(t *testing.T) { testOddUIDs(t, cc) })
}

func TestTwoNodes(t *testing.T) { testTwoNodes(t, sharedServer(t).Client(t)) }

// TestLockProtocol runs the suite with the Cluster protocol on a single
// Redis, and two nodes where one appends with it and the other with the
// one-script protocol, as during an upgrade from a version that only had
// the first.
func TestLockProtocol(t *testing.T) {
	c := sharedServer(t).Client(t)
	t.Run("Suite", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T, opts inbox.Options) inbox.Store {
			return openLockStore(t, c, newPrefix(), opts)
		})
	})
	t.Run("Mixed", func(t *testing.T) {
		prefix := newPrefix()
		runTwoNodes(t, []*Store{
			openLockStore(t, c, prefix, inbox.Options{NodeID: 1}),
			openStore(t, c, prefix, inbox.Options{NodeID: 2}),
		})
	})
}

// testTwoNodes has two stores with different node ids, as two inboxmq
// nodes would, append concurrently to the same inboxes, one or two at a
// time: every inbox must keep dense Seqs and increasing ids, and every
// Append's id must be its own and carry its node's id.
func testTwoNodes(t *testing.T, c redis.UniversalClient) {
	prefix := newPrefix()
	runTwoNodes(t, []*Store{
		openStore(t, c, prefix, inbox.Options{NodeID: 1}),
		openStore(t, c, prefix, inbox.Options{NodeID: 2}),
	})
}

func runTwoNodes(t *testing.T, nodes []*Store) {
	ctx := context.Background()
	const workers, per = 4, 60
	type appended struct {
		node int
		msgs []inbox.Message
	}
	results := make(chan appended, len(nodes)*workers*per)
	errs := make(chan error, len(nodes)*workers)
	var wg sync.WaitGroup
	for n, s := range nodes {
		for w := range workers {
			wg.Go(func() {
				for i := range per {
					content := fmt.Sprint(n, "/", w, "/", i)
					var msgs []inbox.Message
					switch (w + i) % 3 {
					case 0:
						msgs = []inbox.Message{{UID: "x", Kind: inbox.KindNotice, Content: content}}
					case 1:
						msgs = []inbox.Message{
							{UID: "x", Kind: inbox.KindDirect, Peer: "y", Content: content},
							{UID: "y", Kind: inbox.KindSent, Peer: "x", Content: content},
						}
					default:
						msgs = []inbox.Message{
							{UID: "z", Kind: inbox.KindDirect, Peer: "y", Content: content},
							{UID: "y", Kind: inbox.KindSent, Peer: "z", Content: content},
						}
					}
					got, err := s.Append(ctx, msgs)
					if err != nil {
						errs <- fmt.Errorf("node %d worker %d append %d: %w", n, w, i, err)
						return
					}
					results <- appended{n + 1, got}
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	close(results)
	for err := range errs {
		t.Fatal(err)
	}

	want := map[string]map[uint64]inbox.Message{} // uid -> seq -> entry
	byID := map[string]int{}
	for r := range results {
		id, err := strconv.ParseUint(r.msgs[0].ID, 10, 64)
		if err != nil {
			t.Fatalf("id %q: %v", r.msgs[0].ID, err)
		}
		if node := int(id >> 12 & 1023); node != r.node {
			t.Errorf("id %d carries node %d, appended by node %d", id, node, r.node)
		}
		byID[r.msgs[0].ID]++
		for _, m := range r.msgs {
			if m.ID != r.msgs[0].ID {
				t.Errorf("entries of one Append have ids %s and %s", r.msgs[0].ID, m.ID)
			}
			if want[m.UID] == nil {
				want[m.UID] = map[uint64]inbox.Message{}
			}
			if _, dup := want[m.UID][m.Seq]; dup {
				t.Fatalf("Seq %d of %s returned twice", m.Seq, m.UID)
			}
			want[m.UID][m.Seq] = m
		}
	}
	for id, n := range byID {
		if n != 1 {
			t.Errorf("id %s returned by %d Appends", id, n)
		}
	}
	for uid, bySeq := range want {
		got, err := nodes[0].Read(ctx, uid, 0, 1<<20)
		if err != nil {
			t.Fatalf("Read(%s): %v", uid, err)
		}
		if len(got) != len(bySeq) {
			t.Fatalf("inbox %s holds %d messages, %d were appended", uid, len(got), len(bySeq))
		}
		var prev uint64
		for i, m := range got {
			if m.Seq != uint64(i+1) {
				t.Fatalf("inbox %s: message %d has Seq %d (not dense)", uid, i, m.Seq)
			}
			if m != bySeq[m.Seq] {
				t.Fatalf("inbox %s Seq %d reads %+v, Append returned %+v", uid, m.Seq, m, bySeq[m.Seq])
			}
			id, err := strconv.ParseUint(m.ID, 10, 64)
			if err != nil {
				t.Fatalf("id %q: %v", m.ID, err)
			}
			if id <= prev {
				t.Fatalf("inbox %s Seq %d: id %d not above %d", uid, m.Seq, id, prev)
			}
			prev = id
		}
	}
}

// testOddUIDs checks uids with the characters that matter to hash tags.
func testOddUIDs(t *testing.T, c redis.UniversalClient) {
	ctx := context.Background()
	s := openStore(t, c, newPrefix(), inbox.Options{})
	uids := []string{"}x", "{x}", "a}b{c", "%7D", "}", "{", "{}", "%", "x"}
	for i, uid := range uids {
		for j := range i + 1 {
			peer := uids[(i+1)%len(uids)]
			if _, err := s.Append(ctx, []inbox.Message{
				{UID: uid, Kind: inbox.KindDirect, Peer: peer, Content: uid + strconv.Itoa(j)},
				{UID: peer, Kind: inbox.KindSent, Peer: uid, Content: uid + strconv.Itoa(j)},
			}); err != nil {
				t.Fatalf("Append to %q: %v", uid, err)
			}
		}
	}
	for i, uid := range uids {
		got, err := s.Thread(ctx, uid, uids[(i+1)%len(uids)], 0, 100)
		if err != nil {
			t.Fatalf("Thread(%q): %v", uid, err)
		}
		if len(got) != i+1 {
			t.Errorf("Thread(%q) holds %d messages, want %d", uid, len(got), i+1)
		}
		for _, m := range got {
			if m.UID != uid || m.Content[:len(uid)] != uid {
				t.Errorf("Thread(%q) returned %q of %q", uid, m.Content, m.UID)
			}
		}
	}
	if n, err := s.ExpireBefore(ctx, s.now().Add(time.Hour)); err != nil || n != 2*len(uids)*(len(uids)+1)/2 {
		t.Errorf("ExpireBefore = %d, %v, want %d", n, err, 2*len(uids)*(len(uids)+1)/2)
	}
}
