package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/inboxmq/inboxmq/inbox"
	redisstore "github.com/inboxmq/inboxmq/inbox/redis"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// outageRecipient never connects: every message it is sent must yield one
// push event.
const outageRecipient = "10021"

// outageRun is what the senders of TestCluster_RedisOutages did.
type outageRun struct {
	r     *redistest.Server
	store *redisstore.Store // the deployment's store, read by the test
	up    atomic.Bool       // Redis answers (not paused, not killed)
	upCh  chan struct{}     // closed and replaced when Redis comes back
	mu    sync.Mutex
	stop  chan struct{}

	refused  map[string]int // cid -> 0x80 answers
	resent   map[string]int // cid -> sends after the first
	unknown  int            // requests answered by a closed connection
	maxAckV5 time.Duration  // the longest an MQTT 5 request waited for its answer
}

func (o *outageRun) setUp(up bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.up.Store(up)
	if up {
		close(o.upCh)
		o.upCh = make(chan struct{})
	}
}

// waitUp blocks until Redis is up (as the test says, not as the broker does).
func (o *outageRun) waitUp() {
	for {
		o.mu.Lock()
		ch, up := o.upCh, o.up.Load()
		o.mu.Unlock()
		if up {
			return
		}
		<-ch
	}
}

// holds reports how many entries of uid's inbox carry text.
func (o *outageRun) holds(t *testing.T, uid, text string) int {
	t.Helper()
	return storeHolds(t, o.store, uid, text)
}

// storeHolds reports how many entries of uid's inbox in s carry text
// (content of a direct message or of the sender's copy).
func storeHolds(t *testing.T, s inbox.Store, uid, text string) int {
	t.Helper()
	msgs, err := s.Read(context.Background(), uid, 0, 1<<20)
	if err != nil {
		t.Errorf("read %s: %v", uid, err)
		return -1
	}
	n := 0
	for _, m := range msgs {
		if m.Content == text {
			n++
		}
	}
	return n
}

// Redis is paused (SIGSTOP) for 5 s, then killed and restarted, while an
// MQTT 5 and a 3.1.1 sender, on two nodes, stream requests with cids and
// resend as an app does: after 0x80, after a lost connection. Every
// request is stored exactly once, in the order sent; a request answered
// 0x80 is in neither history until it is resent; an MQTT 5 sender is
// answered within redis.timeout; the offline recipient gets one push event
// per stored message; the same cid sent to each node is stored once.
func TestCluster_RedisOutages(t *testing.T) {
	r := redistest.Start(t, redistest.Config{AOF: true})
	hooks := newHookReceiver(t)
	hooks.accept.Store(true)
	var nodes []*mqtttest.Process
	for i := range 2 {
		cfg := mqtttest.WriteConfig(t, t.TempDir(),
			fmt.Sprintf("node_id: %d", i+1),
			"store: redis",
			fmt.Sprintf(`redis: {addresses: ["%s"], prefix: "t:", timeout: 2s}`, r.Addr),
			"push: {after: 1s, check_interval: 100ms}",
			"events:",
			"  max_age: 1h",
			"  retry_max_interval: 1s",
			fmt.Sprintf("  webhook: {url: %q, secret: %q, timeout: 2s, retries: -1}", hooks.srv.URL, hooks.secret),
		)
		nodes = append(nodes, mqtttest.StartProcess(t, cfg))
	}
	store, err := redisstore.Open(context.Background(), redisstore.Options{
		Client: r.Client(t), Prefix: "t:", Inbox: inbox.Options{NodeID: 99}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	o := &outageRun{r: r, store: store, upCh: make(chan struct{}), stop: make(chan struct{}),
		refused: map[string]int{}, resent: map[string]int{}}
	o.up.Store(true)

	var wg sync.WaitGroup
	sent := make([][]string, 2) // cids in the order each sender finished them
	wg.Go(func() { sent[0] = o.runV5(t, nodes[0].MQTTAddr, "10001") })
	wg.Go(func() { sent[1] = o.runV3(t, nodes[1].MQTTAddr, "10002") })

	// Each outage: Redis goes away, stays away, comes back; then 2 s of
	// normal traffic.
	time.Sleep(time.Second)
	for _, outage := range []struct {
		down, up func() error
		length   time.Duration
	}{
		{r.Pause, r.Resume, 5 * time.Second},
		{r.Kill, r.Restart, 2 * time.Second},
	} {
		o.setUp(false)
		if err := outage.down(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(outage.length)
		if err := outage.up(); err != nil {
			t.Fatal(err)
		}
		o.setUp(true)
		time.Sleep(2 * time.Second)
	}
	close(o.stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every request stored once, in order, in both inboxes.
	total := 0
	for i, uid := range []string{"10001", "10002"} {
		if len(sent[i]) < 20 {
			t.Errorf("sender %s finished only %d requests", uid, len(sent[i]))
		}
		total += len(sent[i])
		got := o.thread(t, outageRecipient, uid, inbox.KindDirect)
		if strings.Join(got, " ") != strings.Join(sent[i], " ") {
			t.Errorf("recipient's messages from %s:\n got %v\nwant %v", uid, got, sent[i])
		}
		if copies := o.thread(t, uid, outageRecipient, inbox.KindSent); strings.Join(copies, " ") != strings.Join(sent[i], " ") {
			t.Errorf("%s's own copies:\n got %v\nwant %v", uid, copies, sent[i])
		}
	}
	var notStored, unknown int
	for _, n := range nodes {
		notStored += strings.Count(n.Log(), "stored=no")
		unknown += strings.Count(n.Log(), "stored=unknown")
	}
	t.Logf("broker logs: %d requests certainly not stored, %d with an unknown outcome", notStored, unknown)
	o.mu.Lock()
	t.Logf("requests stored: %d; answered 0x80: %d; resent: %d; answered by a closed connection: %d; longest MQTT 5 answer: %v",
		total, len(o.refused), len(o.resent), o.unknown, o.maxAckV5)
	if o.maxAckV5 > 4*time.Second {
		t.Errorf("an MQTT 5 request waited %v for its answer; redis.timeout is 2s", o.maxAckV5)
	}
	o.mu.Unlock()

	// One push event per stored message.
	deadline := time.Now().Add(60 * time.Second)
	for {
		byMsg := map[string]int{}
		for _, e := range hooks.byType("push") {
			if e["uid"] == outageRecipient {
				byMsg[fmt.Sprint(e["msgid"])]++
			}
		}
		dups := 0
		for _, n := range byMsg {
			dups += n - 1
		}
		if dups > 0 {
			t.Fatalf("%d push events repeated a message", dups)
		}
		if len(byMsg) == total {
			t.Logf("push events: %d for %d stored messages", len(byMsg), total)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d push events for %d stored messages", len(byMsg), total)
		}
		time.Sleep(200 * time.Millisecond)
	}

	// The same cid to each node: stored once, acknowledged both times.
	for i, node := range nodes {
		c := mqtttest.MustV5(t, node.MQTTAddr, "10003", mqtttest.Token(t, "10003"), mqtttest.V5Options{ClientID: fmt.Sprint("both-", i)})
		if code, err := c.Pub("im/sendmsg", `{"uid":10021,"msg":"to both nodes","cid":"both"}`); err != nil || code != 0 {
			t.Fatalf("send to node %d: %#x %v", i, code, err)
		}
		c.Close()
	}
	if n := o.holds(t, outageRecipient, "to both nodes"); n != 1 {
		t.Errorf("a request sent to each node is stored %d times, want 1", n)
	}
}

// thread lists, in Seq order, the content of uid's entries of kind with peer.
func (o *outageRun) thread(t *testing.T, uid, peer string, kind inbox.Kind) []string {
	t.Helper()
	msgs, err := o.store.Read(context.Background(), uid, 0, 1<<20)
	if err != nil {
		t.Fatalf("read %s: %v", uid, err)
	}
	var out []string
	for _, m := range msgs {
		if m.Kind == kind && m.Peer == peer {
			out = append(out, m.Content)
		}
	}
	return out
}

func (o *outageRun) stopped() bool {
	select {
	case <-o.stop:
		return true
	default:
		return false
	}
}

// count counts a resend of cid (every attempt after the first).
func (o *outageRun) count(m map[string]int, cid string, attempt int) {
	if attempt == 0 {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	m[cid]++
}

// refusedThenAbsent records a 0x80 for cid and checks, once Redis is back,
// that neither inbox holds the request: 0x80 means not stored.
func (o *outageRun) refusedThenAbsent(t *testing.T, from, cid string) {
	o.mu.Lock()
	o.refused[cid]++
	o.mu.Unlock()
	o.waitUp()
	for range 50 { // Redis may still be loading its AOF
		if _, _, err := o.store.Bounds(context.Background(), from); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n, m := o.holds(t, outageRecipient, cid), o.holds(t, from, cid); n != 0 || m != 0 {
		t.Errorf("request %s was answered 0x80 but is stored (recipient %d, sender %d)", cid, n, m)
	}
}

// runV5 sends requests one at a time over MQTT 5, as an app does: after
// 0x80 it sends the same request again; after a lost connection it
// reconnects and sends it again. It returns the cids in the order done.
func (o *outageRun) runV5(t *testing.T, addr, uid string) []string {
	var done []string
	var c *mqtttest.V5
	defer func() {
		if c != nil {
			c.Close()
		}
	}()
	for i := 0; !o.stopped(); i++ {
		cid := fmt.Sprintf("%s-%d", uid, i)
		for attempt := 0; ; attempt++ {
			o.count(o.resent, cid, attempt)
			for c == nil {
				var err error
				if c, err = mqtttest.ConnectV5(addr, uid, mqtttest.Token(t, uid), mqtttest.V5Options{}); err != nil {
					c = nil
					time.Sleep(100 * time.Millisecond)
				}
			}
			start := time.Now()
			code, err := pubOrLost(c, fmt.Sprintf(`{"uid":%s,"msg":%q,"cid":%q}`, outageRecipient, cid, cid))
			took := time.Since(start)
			o.mu.Lock()
			o.maxAckV5 = max(o.maxAckV5, took)
			o.mu.Unlock()
			switch {
			case err == nil && code == 0:
			case err == nil && code == 0x80:
				o.refusedThenAbsent(t, uid, cid)
				continue
			case err == nil:
				t.Errorf("request %s: reason code %#x", cid, code)
				return done
			default: // connection lost: the outcome is unknown, send it again
				o.mu.Lock()
				o.unknown++
				o.mu.Unlock()
				c.Close()
				c = nil
				continue
			}
			break
		}
		done = append(done, cid)
		time.Sleep(10 * time.Millisecond)
	}
	return done
}

// runV3 sends requests one at a time over MQTT 3.1.1 with a persistent
// session. A 3.1.1 sender learns of a failure only from a closed
// connection; it reconnects and sends the request again.
func (o *outageRun) runV3(t *testing.T, addr, uid string) []string {
	var done []string
	var c paho.Client
	var lost <-chan struct{}
	defer func() {
		if c != nil {
			c.Disconnect(100)
		}
	}()
	for i := 0; !o.stopped(); i++ {
		cid := fmt.Sprintf("%s-%d", uid, i)
		for attempt := 0; ; attempt++ {
			o.count(o.resent, cid, attempt)
			for c == nil {
				var err error
				if c, lost, err = dialV3(addr, uid, mqtttest.Token(t, uid), nil); err != nil {
					c = nil
					time.Sleep(100 * time.Millisecond)
				}
			}
			tok := c.Publish("im/sendmsg", 1, false, fmt.Sprintf(`{"uid":%s,"msg":%q,"cid":%q}`, outageRecipient, cid, cid))
			select {
			case <-tok.Done():
			case <-lost:
			case <-time.After(30 * time.Second):
				t.Errorf("request %s: no PUBACK and no closed connection in 30 s", cid)
				return done
			}
			if tok.Error() == nil && isDone(tok.Done()) {
				break
			}
			o.mu.Lock()
			o.unknown++
			o.mu.Unlock()
			c.Disconnect(0)
			c = nil
		}
		done = append(done, cid)
		time.Sleep(10 * time.Millisecond)
	}
	return done
}

// pubOrLost publishes a request and returns its PUBACK reason code, or an
// error as soon as the connection ends without one.
func pubOrLost(c *mqtttest.V5, payload string) (byte, error) {
	type result struct {
		code byte
		err  error
	}
	res := make(chan result, 1)
	go func() {
		code, err := c.Pub("im/sendmsg", payload)
		res <- result{code, err}
	}()
	select {
	case r := <-res:
		return r.code, r.err
	case <-c.Done():
		select {
		case r := <-res: // answered just before the end
			if r.err == nil {
				return r.code, nil
			}
		case <-time.After(100 * time.Millisecond):
		}
		return 0, errors.New("connection closed without an answer")
	}
}

func isDone(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
