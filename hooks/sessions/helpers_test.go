package sessions

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/inbox"
	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
	redisstore "github.com/inboxmq/inboxmq/inbox/redis"
	"github.com/inboxmq/inboxmq/internal/logbuf"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// wait bounds every wait in these tests. It is generous: a missed deadline
// means something that never happens, not a slow machine.
const wait = 20 * time.Second

// listenerID is the id of the test servers' TCP listener.
const listenerID = "t1"

// waitUntil polls cond until it holds, failing the test at the deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// nextMilli waits until the wall clock is past ms, so that two events on
// either side get different millisecond stamps.
func nextMilli(ms int64) {
	for time.Now().UnixMilli() <= ms+1 {
		time.Sleep(time.Millisecond)
	}
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	t.Cleanup(cancel)
	return ctx
}

// logBuffer collects log output (internal/logbuf).
type logBuffer = logbuf.Buffer

// recorder is a hook added after the sessions hook: mochi runs hooks in
// the order they were added, so once the recorder saw an event, the
// sessions hook has handled it.
type recorder struct {
	mqtt.HookBase
	mu           sync.Mutex
	established  map[string][]*mqtt.Client // by client id, oldest first
	disconnected map[*mqtt.Client]bool
	expired      map[string]int
}

func newRecorder() *recorder {
	return &recorder{
		established:  make(map[string][]*mqtt.Client),
		disconnected: make(map[*mqtt.Client]bool),
		expired:      make(map[string]int),
	}
}

func (r *recorder) ID() string { return "test-recorder" }

func (r *recorder) Provides(b byte) bool {
	return b == mqtt.OnSessionEstablished || b == mqtt.OnDisconnect || b == mqtt.OnClientExpired
}

func (r *recorder) OnSessionEstablished(cl *mqtt.Client, _ packets.Packet) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.established[cl.ID] = append(r.established[cl.ID], cl)
}

func (r *recorder) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.disconnected[cl] = true
}

func (r *recorder) OnClientExpired(cl *mqtt.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expired[cl.ID]++
}

// waitEstablished waits until the n-th connection (from 1) with id is
// established and the sessions hook stored its session, and returns it.
func (r *recorder) waitEstablished(t testing.TB, id string, n int) *mqtt.Client {
	t.Helper()
	var cl *mqtt.Client
	waitUntil(t, fmt.Sprintf("connection %d of %s established", n, id), func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		if len(r.established[id]) >= n {
			cl = r.established[id][n-1]
			return true
		}
		return false
	})
	return cl
}

// waitDisconnected waits until the sessions hook handled cl's end.
func (r *recorder) waitDisconnected(t testing.TB, cl *mqtt.Client) {
	t.Helper()
	waitUntil(t, "disconnect of "+cl.ID, func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.disconnected[cl]
	})
}

// testServer is a mochi server with the sessions hook on a loopback TCP
// listener, every client allowed.
type testServer struct {
	srv  *mqtt.Server
	hook *Hook
	rec  *recorder
	addr string
	logs *logBuffer
	// restored and retained are what Restore returned.
	restored, retained int
	stopOnce           sync.Once
}

// startServer runs a server whose sessions hook has opts (Server, Store
// and Log filled in; MaxExpiry an hour when unset), restores, serves, and
// stops at the end of the test.
func startServer(t testing.TB, store Store, opts Options) *testServer {
	t.Helper()
	ts := &testServer{rec: newRecorder(), logs: &logBuffer{}, hook: new(Hook)}
	// As the broker runs it: hooks called on mochi's handler goroutines
	// (third_party/mochi-mqtt-server/PATCHES.md, patch 1).
	ts.srv = mqtt.New(&mqtt.Options{Logger: slog.New(slog.DiscardHandler), ShallowClientStacks: true})
	if err := ts.srv.AddHook(new(auth.AllowHook), nil); err != nil {
		t.Fatal(err)
	}
	opts.Server, opts.Store = ts.srv, store
	if opts.MaxExpiry == 0 {
		opts.MaxExpiry = time.Hour
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(ts.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if err := ts.srv.AddHook(ts.hook, &opts); err != nil {
		t.Fatalf("add sessions hook: %v", err)
	}
	if err := ts.srv.AddHook(ts.rec, nil); err != nil {
		t.Fatal(err)
	}
	tcp := listeners.NewTCP(listeners.Config{ID: listenerID, Address: "127.0.0.1:0"})
	if err := ts.srv.AddListener(tcp); err != nil {
		t.Fatal(err)
	}
	ts.addr = tcp.Address()
	var err error
	if ts.restored, ts.retained, err = ts.hook.Restore(testCtx(t)); err != nil {
		t.Fatalf("Restore: %v", err)
	}
	if err := ts.srv.Serve(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ts.stop()
		if t.Failed() {
			t.Logf("sessions hook log:\n%s", ts.logs.String())
		}
	})
	return ts
}

// stop closes the server (every connection ends, as at a graceful
// shutdown) and the hook's sweep.
func (ts *testServer) stop() {
	ts.stopOnce.Do(func() {
		_ = ts.srv.Close()
		ts.hook.Close()
	})
}

// subscriptions returns the filters of the session id in the server.
func (ts *testServer) subscriptions(id string) map[string]packets.Subscription {
	cl, ok := ts.srv.Clients.Get(id)
	if !ok {
		return nil
	}
	return cl.State.Subscriptions.GetAll()
}

// subscribed reports whether the topic tree delivers topic to client id.
func (ts *testServer) subscribed(id, topic string) bool {
	_, ok := ts.srv.Topics.Subscribers(topic).Subscriptions[id]
	return ok
}

// pebbleDB is an embedded store that a test can close and open again, as
// a restart does.
type pebbleDB struct {
	dir string
	*pebblestore.Store
}

func openPebble(t testing.TB) *pebbleDB {
	t.Helper()
	db := &pebbleDB{dir: t.TempDir()}
	db.reopen(t)
	return db
}

// reopen closes the store (if open) and opens it again from its directory.
func (db *pebbleDB) reopen(t testing.TB) {
	t.Helper()
	if db.Store != nil {
		if err := db.Store.Close(); err != nil {
			t.Fatalf("close store: %v", err)
		}
	}
	s, err := pebblestore.Open(db.dir, inbox.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	db.Store = s
	t.Cleanup(func() {
		if err := s.Close(); err != nil && !errors.Is(err, inbox.ErrClosed) {
			t.Errorf("close store: %v", err)
		}
	})
}

var prefixes atomic.Int64

// openRedisStore opens a Redis store for node id under prefix.
func openRedisStore(t testing.TB, srv *redistest.Server, prefix string, node int) *redisstore.Store {
	t.Helper()
	s, err := redisstore.Open(testCtx(t), redisstore.Options{
		Client: srv.Client(t), Prefix: prefix, Inbox: inbox.Options{NodeID: node},
	})
	if err != nil {
		t.Fatalf("open redis store: %v", err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

// newPrefix is a key prefix no other test uses.
func newPrefix() string { return fmt.Sprintf("st%d:", prefixes.Add(1)) }

// storedSession reads id from the store, failing the test on error.
func storedSession(t testing.TB, store Store, id string) (inbox.Session, bool) {
	t.Helper()
	s, ok, err := store.Session(testCtx(t), id)
	if err != nil {
		t.Fatalf("read session %s: %v", id, err)
	}
	return s, ok
}

// filters lists a stored session's filters with their QoS, for messages.
func filters(subs []inbox.Subscription) string {
	var b strings.Builder
	for _, s := range subs {
		fmt.Fprintf(&b, "%s@%d ", s.Filter, s.QoS)
	}
	return strings.TrimSpace(b.String())
}

// message is one PUBLISH a test client received.
type message struct {
	Topic   string
	Payload string
	Retain  bool
	Expiry  uint32 // MQTT 5 Message Expiry Interval, 0: none
	Content string // MQTT 5 content type
}

// v3Client is a paho MQTT 3.1.1 client.
type v3Client struct {
	paho.Client
	msgs    chan message
	present bool
}

// connectV3 connects a 3.1.1 client with clean session clean.
func connectV3(t testing.TB, addr, id, user string, clean bool) *v3Client {
	t.Helper()
	c := &v3Client{msgs: make(chan message, 100)}
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID(id).
		SetUsername(user).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(wait).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.msgs <- message{Topic: m.Topic(), Payload: string(m.Payload()), Retain: m.Retained()}
		})
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	c.present = tok.(*paho.ConnectToken).SessionPresent()
	t.Cleanup(func() { c.Disconnect(0) })
	return c
}

func (c *v3Client) sub(t testing.TB, filter string, qos byte) {
	t.Helper()
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	if r := tok.(*paho.SubscribeToken).Result()[filter]; r != qos {
		t.Fatalf("subscribe %s: granted %#x, want %d", filter, r, qos)
	}
}

func (c *v3Client) unsub(t testing.TB, filter string) {
	t.Helper()
	tok := c.Unsubscribe(filter)
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("unsubscribe %s: %v", filter, tok.Error())
	}
}

func (c *v3Client) pub(t testing.TB, topic string, retain bool, payload string) {
	t.Helper()
	tok := c.Publish(topic, 1, retain, []byte(payload))
	if !tok.WaitTimeout(wait) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// close disconnects politely (DISCONNECT).
func (c *v3Client) close() { c.Disconnect(250) }

// v5Client is a paho.golang MQTT 5 client.
type v5Client struct {
	*paho5.Client
	conn    net.Conn
	msgs    chan message
	connack *paho5.Connack
}

// v5Options shape an MQTT 5 connection.
type v5Options struct {
	User       string
	Expiry     uint32 // session expiry interval
	CleanStart bool
}

func connectV5(t testing.TB, addr, id string, o v5Options) *v5Client {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	c := &v5Client{conn: conn, msgs: make(chan message, 100)}
	c.Client = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				m := message{Topic: pr.Packet.Topic, Payload: string(pr.Packet.Payload), Retain: pr.Packet.Retain}
				if p := pr.Packet.Properties; p != nil {
					if p.MessageExpiry != nil {
						m.Expiry = *p.MessageExpiry
					}
					m.Content = p.ContentType
				}
				c.msgs <- m
				return true, nil
			},
		},
		OnClientError: func(error) {},
	})
	props := &paho5.ConnectProperties{}
	if o.Expiry > 0 {
		props.SessionExpiryInterval = &o.Expiry
	}
	ca, err := c.Connect(testCtx(t), &paho5.Connect{
		ClientID:     id,
		Username:     o.User,
		UsernameFlag: o.User != "",
		CleanStart:   o.CleanStart,
		KeepAlive:    30,
		Properties:   props,
	})
	if err != nil {
		conn.Close()
		t.Fatalf("connect v5 %s: %v", id, err)
	}
	c.connack = ca
	t.Cleanup(func() { c.close(nil) })
	return c
}

func (c *v5Client) sub(t testing.TB, s *paho5.Subscribe) []byte {
	t.Helper()
	sa, err := c.Subscribe(testCtx(t), s)
	if err != nil {
		t.Fatalf("subscribe: %v", err)
	}
	return sa.Reasons
}

func (c *v5Client) unsub(t testing.TB, filters ...string) {
	t.Helper()
	if _, err := c.Unsubscribe(testCtx(t), &paho5.Unsubscribe{Topics: filters}); err != nil {
		t.Fatalf("unsubscribe: %v", err)
	}
}

func (c *v5Client) pub(t testing.TB, p *paho5.Publish) {
	t.Helper()
	p.QoS = 1
	resp, err := c.Publish(testCtx(t), p)
	if err != nil || resp.ReasonCode >= 0x80 {
		t.Fatalf("publish %s: %v %v", p.Topic, resp, err)
	}
}

// close sends a DISCONNECT, with a session expiry when expiry is set, and
// waits for the connection to end.
func (c *v5Client) close(expiry *uint32) {
	d := &paho5.Disconnect{ReasonCode: 0}
	if expiry != nil {
		d.Properties = &paho5.DisconnectProperties{SessionExpiryInterval: expiry}
	}
	_ = c.Disconnect(d)
	select {
	case <-c.Done():
	case <-time.After(5 * time.Second):
	}
	c.conn.Close()
}

// next returns the next message a client received.
func next(t testing.TB, msgs <-chan message) message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(wait):
		t.Fatal("no message received")
		return message{}
	}
}
