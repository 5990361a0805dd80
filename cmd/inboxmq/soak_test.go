//go:build soak

// Built only with -tags soak (make soak): 30 minutes is not for CI.

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// TestSoak is `make soak` (not in CI): the real binary (built without the
// race detector, so memory figures are real) under connect/disconnect
// churn, steady direct messages and broadcasts, with a slow consumer that
// never reads its socket. It samples the process (RSS, open fds) and the
// broker's $SYS figures (goroutines, heap in use, clients, subscriptions)
// at the start, every INBOXMQ_SOAK_SAMPLE (default 1m) and after the load
// stops, and checks that:
//   - every acknowledged chat message arrived, and chat latency stayed low
//     despite the slow consumer (p99 under 2 s);
//   - after the load, goroutines, fds, clients and subscriptions are back
//     to the start plus what the test deliberately keeps (persistent
//     sessions): no session, subscription or timer leak, and expired MQTT 5
//     sessions leave nothing behind in the topic index;
//   - RSS and heap are flat after warm-up.
func TestSoak(t *testing.T) {
	duration := envDuration(t, "INBOXMQ_SOAK_DURATION", 30*time.Minute)
	every := envDuration(t, "INBOXMQ_SOAK_SAMPLE", time.Minute)
	runSoak(t, soakParams{
		Duration:       duration,
		Sample:         every,
		ChatPairs:      20,
		ChatInterval:   time.Second,
		ChurnWorkers:   6,
		ChurnPool:      20,
		Broadcast:      5 * time.Second,
		SlowFeed:       100 * time.Millisecond,
		SlowFeedBytes:  4 << 10,
		SessionExpiry:  2,
		SysInterval:    5,
		MaxP99:         2 * time.Second,
		RSSGrowth:      0.25,
		RSSGrowthFloor: 16 << 20,
	})
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: want a duration such as 30m", name, v)
	}
	return d
}

type soakParams struct {
	Duration, Sample time.Duration
	ChatPairs        int           // users chatting in pairs, online throughout
	ChatInterval     time.Duration // each chat user sends one message per interval
	ChurnWorkers     int           // goroutines connecting and disconnecting in a loop
	ChurnPool        int           // uids per churn worker (persistent sessions are kept for these)
	Broadcast        time.Duration // a notice to everyone this often
	SlowFeed         time.Duration // a message to the slow consumer this often
	SlowFeedBytes    int
	SessionExpiry    uint32 // seconds, for the MQTT 5 churn sessions
	SysInterval      int    // mqtt.sys_topic_interval
	MaxP99           time.Duration
	RSSGrowth        float64 // allowed RSS and heap growth after warm-up (fraction)...
	RSSGrowthFloor   int64   // ...or this many bytes, whichever is larger
}

// soakSample is one measurement.
type soakSample struct {
	Label                       string
	At                          time.Duration
	RSS, HWM                    int64 // bytes
	FDs, StoreFDs, OSThreads    int   // StoreFDs: files under data_dir (Pebble's tables and logs)
	Goroutines, HeapInuse       int64 // from $SYS
	Connected, Total, Subs      int64
	Dropped, Inflight           int64
	ChatP50, ChatP99, ChatMax   time.Duration
	ChatMsgs, Churns, ChurnErrs int64
}

func (s soakSample) String() string {
	return fmt.Sprintf("%-8s %6s rss=%6.1fMiB (peak %6.1fMiB) heap=%6.1fMiB goroutines=%5d fds=%4d (store %3d) threads=%3d clients=%4d/%4d subs=%5d dropped=%d inflight=%d chat=%d p50=%s p99=%s max=%s churn=%d errs=%d",
		s.Label, s.At.Round(time.Second), float64(s.RSS)/(1<<20), float64(s.HWM)/(1<<20), float64(s.HeapInuse)/(1<<20), s.Goroutines, s.FDs, s.StoreFDs, s.OSThreads,
		s.Connected, s.Total, s.Subs, s.Dropped, s.Inflight, s.ChatMsgs, s.ChatP50.Round(time.Millisecond),
		s.ChatP99.Round(time.Millisecond), s.ChatMax.Round(time.Millisecond), s.Churns, s.ChurnErrs)
}

func runSoak(t *testing.T, p soakParams) {
	dataDir := t.TempDir()
	cfgPath := mqtttest.WriteConfig(t, dataDir,
		// Small, so the store's memory settles during warm-up: two 64 MiB
		// memtables fill only after 15-20 minutes of this load, and RSS
		// would grow after warm-up without a leak.
		"embedded_memtable_size: 4MiB",
		"mqtt:",
		fmt.Sprintf("  sys_topic_interval: %ds", p.SysInterval),
		// The shipped limits, but for new connections per address: the
		// churn connects fast from loopback.
		"limits:",
		"  connections_per_ip: 0",
		"  message_rate: 20",
		"  message_burst: 40",
		"  http_connections_per_ip: 64",
		"  http_requests_per_ip: 50",
	)
	proc := mqtttest.StartBinary(t, mqtttest.PlainBinary(t), cfgPath)
	addr, wsURL := proc.MQTTAddr, "ws://"+proc.WSAddr+"/mqtt"
	sys := newSysMonitor(t, addr)

	// Steady users: chat pairs (also subscribed to broadcast).
	chat := newChatLoad(p)
	for i := 0; i < 2*p.ChatPairs; i++ {
		chat.connect(t, addr, i)
	}
	// The slow consumer: subscribes to its inbox and broadcast, then never
	// reads its socket (it keeps the connection: keepalive is an hour).
	slow, err := mqtttest.RawConnect(addr, packets.ConnectParams{
		ClientIdentifier: "69999", Username: []byte("69999"), Password: []byte(mqtttest.Token(t, "69999")), Keepalive: 3600,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.Close()
	if _, err := slow.Write(subscribePacket(1, "inbox/69999", "broadcast")); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	time.Sleep(time.Duration(2*p.SysInterval+1) * time.Second)
	var samples []soakSample
	take := func(label string) soakSample {
		s := sys.sample(t, label, proc.PID(), dataDir, time.Since(start))
		chat.fill(&s)
		samples = append(samples, s)
		t.Log(s)
		fmt.Println("SOAK", s)
		return s
	}
	base := take("start")

	// The load.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	run := func(f func()) { wg.Add(1); go func() { defer wg.Done(); f() }() }
	for i := 0; i < 2*p.ChatPairs; i++ {
		run(func() { chat.send(t, i, stop) })
	}
	churn := &churnLoad{p: p, addr: addr, wsURL: wsURL, chatUIDs: chat.uids}
	for w := 0; w < p.ChurnWorkers; w++ {
		tokens := make([]string, p.ChurnPool)
		for i := range tokens {
			tokens[i] = mqtttest.Token(t, churn.uid(w, i))
		}
		run(func() { churn.run(t, w, tokens, stop) })
	}
	run(func() { broadcastLoop(t, addr, p.Broadcast, stop, &chat.broadcasts) })
	feederToken := mqtttest.Token(t, "69998")
	run(func() { feedSlow(t, addr, feederToken, p, stop) })
	attack := newAttackers(t, addr, proc.HTTP)
	for _, a := range attack.all() {
		run(func() { a(stop) })
	}
	logAtLoad := proc.LogBytes()

	loadEnd := start.Add(p.Duration)
	for time.Until(loadEnd) > 0 {
		time.Sleep(min(p.Sample, time.Until(loadEnd)))
		chat.churns.Store(churn.cycles.Load())
		chat.churnErrs.Store(churn.errors.Load())
		take("load")
	}
	close(stop)
	wg.Wait()
	loaded := samples[len(samples)-1]
	logRate := float64(proc.LogBytes()-logAtLoad) / p.Duration.Seconds()

	// Quiet: let the chat drain and the MQTT 5 churn sessions expire, then
	// measure again.
	time.Sleep(time.Duration(p.SessionExpiry)*time.Second + time.Duration(2*p.SysInterval+2)*time.Second)
	quiet := take("quiet")

	for _, s := range samples {
		fmt.Println("SOAK-TABLE", s)
	}
	acked, received, broadcastsSent, broadcastsGot := chat.totals()
	t.Logf("chat: %d acked, %d received; broadcasts: %d sent, %d deliveries to %d chat users; churn: %d cycles, %d errors",
		acked, received, broadcastsSent, broadcastsGot, 2*p.ChatPairs, churn.cycles.Load(), churn.errors.Load())

	// Everything acknowledged reached its (online) recipient, promptly.
	if received != acked {
		t.Errorf("chat: %d acked but %d received", acked, received)
	}
	if want := broadcastsSent * int64(2*p.ChatPairs); broadcastsGot < want {
		t.Errorf("broadcasts: %d deliveries, want %d", broadcastsGot, want)
	}
	if all := chat.allLatencies(); len(all) == 0 || percentile(all, 0.99) > p.MaxP99 {
		t.Errorf("chat latency p99 %s over %s (slow consumer slowing others?)", percentile(all, 0.99), p.MaxP99)
	}
	if n := churn.errors.Load(); n > churn.cycles.Load()/100 {
		t.Errorf("churn: %d errors in %d cycles", n, churn.cycles.Load())
	}
	// The attackers did what they came for, and it cost the log little: an
	// unbounded log took 190 MB/s from one SUBSCRIBE flooder alone.
	t.Logf("attackers: %s; log %.1f KB/s under load", attack, logRate/1000)
	if err := attack.check(); err != nil {
		t.Error(err)
	}
	if logRate > 100_000 {
		t.Errorf("the log grew %.0f KB/s under load with the attackers, want under 100 KB/s", logRate/1000)
	}
	// Back to the start, plus the persistent sessions kept on purpose: one
	// per pooled churn uid (two subscriptions each) and the slow feeder's
	// (none).
	// The attackers' session piler keeps its account's cap of them (no
	// subscription left behind: each subscribes to its own inbox only).
	kept := int64(p.ChurnWorkers*p.ChurnPool) + 1 + int64(maxSessionsPerAccount)
	// The slow consumer may have been disconnected by limits.write_timeout
	// once its socket buffers filled.
	if quiet.Connected != base.Connected && quiet.Connected != base.Connected-1 {
		t.Errorf("clients connected: %d after the load, %d before", quiet.Connected, base.Connected)
	}
	if quiet.Total > base.Total+kept {
		t.Errorf("sessions: %d after the load, want at most %d (start) + %d (pooled persistent): session leak", quiet.Total, base.Total, kept)
	}
	if quiet.Subs > base.Subs+2*kept {
		t.Errorf("subscriptions: %d after the load, want at most %d (start) + %d (pooled persistent): expired sessions leak in the topic index", quiet.Subs, base.Subs, 2*kept)
	}
	if quiet.Goroutines > base.Goroutines+25 {
		t.Errorf("goroutines: %d after the load, %d before", quiet.Goroutines, base.Goroutines)
	}
	// Sockets and other files; the store's own (Pebble keeps the tables it
	// wrote open, bounded by its table cache) are not a leak of ours.
	if quiet.FDs-quiet.StoreFDs > base.FDs-base.StoreFDs+10 {
		t.Errorf("open fds besides the store's: %d after the load, %d before", quiet.FDs-quiet.StoreFDs, base.FDs-base.StoreFDs)
	}
	// Flat after warm-up: the first sample at or after a third of the run
	// against the last one under load.
	for _, s := range samples[1:] {
		if s.At >= p.Duration/3 && s.Label == "load" {
			checkGrowth(t, "RSS", s.RSS, loaded.RSS, p)
			checkGrowth(t, "heap in use", s.HeapInuse, loaded.HeapInuse, p)
			break
		}
	}
}

func checkGrowth(t *testing.T, what string, warm, end int64, p soakParams) {
	t.Helper()
	allowed := max(int64(float64(warm)*p.RSSGrowth), p.RSSGrowthFloor)
	if end > warm+allowed {
		t.Errorf("%s grew from %.1f MiB after warm-up to %.1f MiB (allowed +%.1f MiB)",
			what, float64(warm)/(1<<20), float64(end)/(1<<20), float64(allowed)/(1<<20))
	}
}

// sysMonitor keeps the latest $SYS values, read by an admin account.
type sysMonitor struct {
	mu     sync.Mutex
	values map[string]int64
	seen   map[string]time.Time
}

func newSysMonitor(t *testing.T, addr string) *sysMonitor {
	m := &sysMonitor{values: map[string]int64{}, seen: map[string]time.Time{}}
	c, _, err := v3Dial{URL: "tcp://" + addr, User: mqtttest.AdminName, Password: mqtttest.AdminPassword, ClientID: "soak-monitor", Clean: true,
		OnMessage: func(msg paho.Message) {
			v, err := strconv.ParseInt(string(msg.Payload()), 10, 64)
			if err != nil {
				return
			}
			m.mu.Lock()
			m.values[strings.TrimPrefix(msg.Topic(), "$SYS/broker/")] = v
			m.seen[msg.Topic()] = time.Now()
			m.mu.Unlock()
		}}.dial()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Disconnect(100) })
	if tok := c.Subscribe("$SYS/broker/#", 0, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe $SYS: %v", tok.Error())
	}
	return m
}

func (m *sysMonitor) sample(t *testing.T, label string, pid int, dataDir string, at time.Duration) soakSample {
	t.Helper()
	s := soakSample{Label: label, At: at}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		n, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			s.RSS = n << 10
		case "VmHWM:":
			s.HWM = n << 10
		case "Threads:":
			s.OSThreads = int(n)
		}
	}
	fdDir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	fds, err := os.ReadDir(fdDir)
	if err != nil {
		t.Fatal(err)
	}
	s.FDs = len(fds)
	for _, fd := range fds {
		if target, err := os.Readlink(filepath.Join(fdDir, fd.Name())); err == nil && strings.HasPrefix(target, dataDir) {
			s.StoreFDs++
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s.Goroutines = m.values["system/threads"]
	s.HeapInuse = m.values["system/memory"]
	s.Connected = m.values["clients/connected"]
	s.Total = m.values["clients/total"]
	s.Subs = m.values["subscriptions"]
	s.Dropped = m.values["messages/dropped"]
	s.Inflight = m.values["messages/inflight"]
	return s
}

// chatLoad is pairs of online users messaging each other at a steady rate.
type chatLoad struct {
	p       soakParams
	uids    []string
	clients []paho.Client

	mu        sync.Mutex
	latencies []time.Duration // since the last sample
	all       []time.Duration
	got       map[string]map[int]bool // receiver -> seqs received (each receiver has one sender)
	acked     int64
	received  int64

	broadcasts    atomic.Int64 // sent
	broadcastsGot atomic.Int64
	churns        atomic.Int64 // copied in for the samples
	churnErrs     atomic.Int64
}

func newChatLoad(p soakParams) *chatLoad {
	return &chatLoad{p: p, got: map[string]map[int]bool{}}
}

func (c *chatLoad) uid(i int) string { return strconv.Itoa(60000 + i) }

func (c *chatLoad) connect(t *testing.T, addr string, i int) {
	uid := c.uid(i)
	c.uids = append(c.uids, uid)
	cl, _, err := dialV3(addr, uid, mqtttest.Token(t, uid), func(m paho.Message) { c.record(uid, m) })
	if err != nil {
		t.Fatalf("chat user %s: %v", uid, err)
	}
	t.Cleanup(func() { cl.Disconnect(100) })
	tok := cl.SubscribeMultiple(map[string]byte{"inbox/" + uid: 1, "broadcast": 1}, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("chat user %s subscribe: %v", uid, tok.Error())
	}
	c.clients = append(c.clients, cl)
}

func (c *chatLoad) record(uid string, m paho.Message) {
	var env struct {
		Method string `json:"_method_"`
		Ct     string `json:"ct"`
	}
	if json.Unmarshal(m.Payload(), &env) != nil {
		return
	}
	switch env.Method {
	case "SystemNot":
		if m.Topic() == "broadcast" {
			c.broadcastsGot.Add(1)
		}
	case "SendMsg":
		// "chat <sender-index> <seq> <unix-nanos>"
		f := strings.Fields(env.Ct)
		if len(f) != 4 || f[0] != "chat" {
			return // churn users write to chat users too
		}
		seq, _ := strconv.Atoi(f[2])
		ns, _ := strconv.ParseInt(f[3], 10, 64)
		lat := time.Since(time.Unix(0, ns))
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.got[uid] == nil {
			c.got[uid] = map[int]bool{}
		}
		if !c.got[uid][seq] {
			c.got[uid][seq] = true
			c.received++
			c.latencies = append(c.latencies, lat)
			c.all = append(c.all, lat)
		}
	}
}

// send makes chat user i message its partner once per interval.
func (c *chatLoad) send(t *testing.T, i int, stop <-chan struct{}) {
	from, to := c.clients[i], c.uid(i^1)
	tick := time.NewTicker(c.p.ChatInterval)
	defer tick.Stop()
	for seq := 0; ; seq++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		payload := fmt.Sprintf(`{"uid":%q,"msg":"chat %d %d %d"}`, to, i, seq, time.Now().UnixNano())
		tok := from.Publish("im/sendmsg", 1, false, payload)
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			c.mu.Lock()
			c.acked++
			c.mu.Unlock()
		}
	}
}

func (c *chatLoad) fill(s *soakSample) {
	c.mu.Lock()
	window := c.latencies
	c.latencies = nil
	c.mu.Unlock()
	s.ChatMsgs = int64(len(window))
	s.ChatP50, s.ChatP99 = percentile(window, 0.5), percentile(window, 0.99)
	if len(window) > 0 {
		s.ChatMax = slices.Max(window)
	}
	s.Churns, s.ChurnErrs = c.churns.Load(), c.churnErrs.Load()
}

func (c *chatLoad) totals() (acked, received, broadcastsSent, broadcastsGot int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.acked, c.received, c.broadcasts.Load(), c.broadcastsGot.Load()
}

func (c *chatLoad) allLatencies() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.all)
}

func percentile(d []time.Duration, q float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*q))]
}

// churnLoad connects and disconnects in a loop, cycling through the kinds
// of sessions apps use: 3.1.1 clean, 3.1.1 persistent (client id reused
// from a pool), MQTT 5 with a short session expiry and a fresh client id
// each time (what browsers running MQTT.js do), and WebSocket.
type churnLoad struct {
	p        soakParams
	addr     string
	wsURL    string
	chatUIDs []string
	cycles   atomic.Int64
	errors   atomic.Int64
}

func (c *churnLoad) uid(w, i int) string { return strconv.Itoa(70000 + w*1000 + i) }

// run is worker w's loop; tokens[i] belongs to c.uid(w, i).
func (c *churnLoad) run(t *testing.T, w int, tokens []string, stop <-chan struct{}) {
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-time.After(100 * time.Millisecond):
		}
		i := n % c.p.ChurnPool
		uid := c.uid(w, i)
		to := c.chatUIDs[(w+n)%len(c.chatUIDs)]
		cid := fmt.Sprintf("%s/%d", uid, n)
		var err error
		switch n % 4 {
		case 0:
			err = churnV3(v3Dial{URL: "tcp://" + c.addr, User: uid, Password: tokens[i], ClientID: cid, Clean: true}, to)
		case 1:
			err = churnV3(v3Dial{URL: "tcp://" + c.addr, User: uid, Password: tokens[i]}, to)
		case 2:
			err = churnV5(c.addr, uid, tokens[i], cid, c.p.SessionExpiry, to)
		case 3:
			err = churnV3(v3Dial{URL: c.wsURL, User: uid, Password: tokens[i], ClientID: cid, Clean: true}, to)
		}
		c.cycles.Add(1)
		if err != nil {
			c.errors.Add(1)
			t.Logf("churn %s (kind %d): %v", cid, n%4, err)
		}
	}
}

// churnV3 logs in, subscribes, sends a message and waits for its own copy.
func churnV3(d v3Dial, to string) error {
	cid := fmt.Sprintf("churn-%d", time.Now().UnixNano())
	mine := make(chan struct{}, 1)
	d.OnMessage = func(m paho.Message) {
		if strings.Contains(string(m.Payload()), `"cid":"`+cid+`"`) {
			select {
			case mine <- struct{}{}:
			default:
			}
		}
	}
	c, _, err := d.dial()
	if err != nil {
		return err
	}
	defer c.Disconnect(50)
	tok := c.SubscribeMultiple(map[string]byte{"inbox/" + d.User: 1, "broadcast": 1}, nil)
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	pub := c.Publish("im/sendmsg", 1, false, fmt.Sprintf(`{"uid":%q,"msg":"churn","cid":%q}`, to, cid))
	if !pub.WaitTimeout(10*time.Second) || pub.Error() != nil {
		return fmt.Errorf("publish: %v", pub.Error())
	}
	select {
	case <-mine:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("own MsgSent not received")
	}
}

// churnV5 is churnV3 for an MQTT 5 session that expires expiry seconds
// after it disconnects.
func churnV5(addr, uid, token, clientID string, expiry uint32, to string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	cid := fmt.Sprintf("churn5-%d", time.Now().UnixNano())
	mine := make(chan struct{}, 1)
	c := paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){func(pr paho5.PublishReceived) (bool, error) {
			if strings.Contains(string(pr.Packet.Payload), `"cid":"`+cid+`"`) {
				select {
				case mine <- struct{}{}:
				default:
				}
			}
			return true, nil
		}},
		OnClientError: func(error) {},
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Connect(ctx, &paho5.Connect{
		ClientID: clientID, Username: uid, UsernameFlag: true, Password: []byte(token), PasswordFlag: true,
		CleanStart: true, KeepAlive: 30, Properties: &paho5.ConnectProperties{SessionExpiryInterval: &expiry},
	}); err != nil {
		conn.Close()
		return fmt.Errorf("connect: %w", err)
	}
	defer func() {
		_ = c.Disconnect(&paho5.Disconnect{ReasonCode: 0})
		select {
		case <-c.Done():
		case <-time.After(2 * time.Second):
		}
	}()
	if _, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "inbox/" + uid, QoS: 1}, {Topic: "broadcast", QoS: 1}}}); err != nil {
		return fmt.Errorf("subscribe: %w", err)
	}
	if r, err := c.Publish(ctx, &paho5.Publish{Topic: "im/sendmsg", QoS: 1, Payload: fmt.Appendf(nil, `{"uid":%q,"msg":"churn","cid":%q}`, to, cid)}); err != nil || r.ReasonCode != 0 {
		return fmt.Errorf("publish: %v %v", r, err)
	}
	select {
	case <-mine:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("own MsgSent not received")
	}
}

// broadcastLoop sends a notice to everyone every interval, as the service account.
func broadcastLoop(t *testing.T, addr string, every time.Duration, stop <-chan struct{}, sent *atomic.Int64) {
	c, _, err := v3Dial{URL: "tcp://" + addr, User: mqtttest.ServiceName, Password: mqtttest.ServicePassword, ClientID: "soak-notices", Clean: true}.dial()
	if err != nil {
		t.Errorf("service account: %v", err)
		return
	}
	defer c.Disconnect(100)
	tick := time.NewTicker(every)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		tok := c.Publish("im/systemadmin", 1, false, fmt.Sprintf(`{"content":"soak notice %d"}`, n))
		if tok.WaitTimeout(10*time.Second) && tok.Error() == nil {
			sent.Add(1)
		}
	}
}

// feedSlow keeps sending the slow consumer messages it never reads.
func feedSlow(t *testing.T, addr, token string, p soakParams, stop <-chan struct{}) {
	c, _, err := dialV3(addr, "69998", token, nil)
	if err != nil {
		t.Errorf("slow feeder: %v", err)
		return
	}
	defer c.Disconnect(100)
	body := strings.Repeat("s", p.SlowFeedBytes)
	tick := time.NewTicker(p.SlowFeed)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		c.Publish("im/sendmsg", 1, false, `{"uid":"69999","msg":"`+body+`"}`).WaitTimeout(10 * time.Second)
	}
}

// subscribePacket is a 3.1.1 SUBSCRIBE for filters at QoS 1 (under 128
// bytes in all: one length byte).
func subscribePacket(id uint16, filters ...string) []byte {
	body := []byte{byte(id >> 8), byte(id)}
	for _, f := range filters {
		body = append(body, byte(len(f)>>8), byte(len(f)))
		body = append(body, f...)
		body = append(body, 1)
	}
	return append([]byte{0x82, byte(len(body))}, body...)
}
