package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The crash test: senders push QoS 1 direct messages to online and offline
// users while the real binary is killed with SIGKILL at random moments and
// restarted on the same data dir. Afterwards every recipient drains its
// inbox and the test counts, per sender-recipient pair:
//   - lost: PUBACKed to the sender, never delivered (must be 0);
//   - order violations: a sequence number below one already seen, not a
//     copy of one already seen (must be 0);
//   - duplicates: copies of a sequence number already seen (reported).

// TestCrash_Short runs inside `make test`: 20 users, 3 kills.
func TestCrash_Short(t *testing.T) {
	runCrash(t, crashParams{
		Senders: 10, Online: 5, Offline: 5,
		Kills:    3,
		Duration: 16 * time.Second,
		Rate:     25,
		Window:   4,
		Drain:    60 * time.Second,
	})
}

// crashParams shape one crash run.
type crashParams struct {
	Senders         int           // users that send, each to every recipient in turn
	Online, Offline int           // recipients connected throughout / only at the end
	Kills           int           // SIGKILLs during the sending phase
	Duration        time.Duration // sending phase
	Rate            float64       // new messages per second per sender
	Window          int           // publishes in flight per sender
	Drain           time.Duration // most time the recipients get to drain at the end
}

// crashResult is what a run counted.
type crashResult struct {
	Published, Acked, Resent int // publishes (resends included), PUBACKed, resends after a lost connection
	Delivered                int // deliveries of acked or unacked messages, duplicates included
	Lost, Order, Dup         int
	Bad                      int // deliveries that are not a well-formed test message for this recipient
	DupResend                int // duplicates from the sender's own resend (two stored copies)
	DupRedelivery            int // the same stored message delivered again after a reconnect
	DupSameConn              int // the same stored message twice on one connection
	UnackedDelivered         int // delivered although the sender never saw its PUBACK
	Drain                    time.Duration
}

func (r crashResult) String() string {
	return fmt.Sprintf("published=%d acked=%d resent=%d delivered=%d lost=%d order=%d bad=%d dup=%d (resend=%d redelivery=%d same-connection=%d) unacked-delivered=%d drain=%s",
		r.Published, r.Acked, r.Resent, r.Delivered, r.Lost, r.Order, r.Bad, r.Dup, r.DupResend, r.DupRedelivery, r.DupSameConn,
		r.UnackedDelivered, r.Drain.Round(100*time.Millisecond))
}

func runCrash(t *testing.T, p crashParams) crashResult {
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	cfgPath := mqtttest.WriteConfig(t, t.TempDir(),
		"inbox:",
		"  max_messages: 10000000 # nothing may be dropped by retention during the run",
	)
	b := newCrashBroker(t, cfgPath)

	recipients := make([]*crashRecipient, 0, p.Online+p.Offline)
	for i := 0; i < p.Online+p.Offline; i++ {
		recipients = append(recipients, newCrashRecipient(strconv.Itoa(40000+i), i < p.Online))
	}
	var online []*crashRecipient
	for _, r := range recipients {
		if r.online {
			online = append(online, r)
			r.start(t, b)
		}
	}
	for _, r := range online {
		if !r.waitSubscribed(30 * time.Second) {
			t.Fatalf("recipient %s did not subscribe", r.uid)
		}
	}

	stopSending := make(chan struct{})
	senders := make([]*crashSender, p.Senders)
	var wg sync.WaitGroup
	for i := range senders {
		s := &crashSender{uid: strconv.Itoa(30000 + i), recipients: recipients, p: p, acked: map[string][]bool{}}
		senders[i] = s
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(t, b, stopSending)
		}()
	}

	// Kill at random moments: each kill after an uptime drawn around the
	// even share of the sending phase.
	start := time.Now()
	slot := p.Duration / time.Duration(p.Kills+1)
	for k := 0; k < p.Kills; k++ {
		up := slot/2 + time.Duration(rng.Int64N(int64(slot)))
		time.Sleep(up)
		b.kill(t)
		t.Logf("kill %d/%d at %s (uptime %s)", k+1, p.Kills, time.Since(start).Round(time.Millisecond), up.Round(time.Millisecond))
		b.restart(t, cfgPath)
	}
	// Keep sending after the last restart, so everyone reconnects under load.
	if rest := p.Duration - time.Since(start); rest > 3*time.Second {
		time.Sleep(rest)
	} else {
		time.Sleep(3 * time.Second)
	}
	close(stopSending)
	wg.Wait()

	// The offline half logs in for the first time; everyone drains.
	for _, r := range recipients {
		if !r.online {
			r.start(t, b)
		}
	}
	expect := map[string][]bool{} // "s>r" -> acked seqs
	for _, s := range senders {
		for k, v := range s.acked {
			expect[k] = v
		}
	}
	drainStart := time.Now()
	deadline := drainStart.Add(p.Drain)
	for time.Now().Before(deadline) && missing(expect, recipients) > 0 {
		time.Sleep(200 * time.Millisecond)
	}
	res := crashResult{Drain: time.Since(drainStart)}
	time.Sleep(time.Second) // late duplicates
	for _, r := range recipients {
		r.stop()
	}

	for _, s := range senders {
		res.Published += s.published
		res.Resent += s.resent
	}
	for _, seqs := range expect {
		for _, ok := range seqs {
			if ok {
				res.Acked++
			}
		}
	}
	for _, r := range recipients {
		r.count(expect, &res)
	}
	res.Lost = missing(expect, recipients)
	t.Logf("crash summary: users=%d (senders=%d online=%d offline=%d) kills=%d duration=%s seed=%d %s",
		p.Senders+p.Online+p.Offline, p.Senders, p.Online, p.Offline, p.Kills, p.Duration, seed, res)
	fmt.Printf("CRASH users=%d kills=%d %s\n", p.Senders+p.Online+p.Offline, p.Kills, res)
	if res.Acked == 0 {
		t.Fatal("no message was acknowledged: the run measured nothing")
	}
	// Duplicates come only from the crashes: a resend of a publish whose
	// PUBACK the crash swallowed, or a redelivery on the next connection
	// of what was delivered but not acknowledged. Never twice on one
	// connection.
	if res.Lost != 0 || res.Order != 0 || res.Bad != 0 || res.DupSameConn != 0 {
		for _, r := range recipients {
			for _, line := range r.report(expect, 5) {
				t.Log(line)
			}
		}
		t.Fatalf("lost=%d order violations=%d bad=%d duplicates on one connection=%d, want 0", res.Lost, res.Order, res.Bad, res.DupSameConn)
	}
	return res
}

// crashBroker is the broker process; its address changes on every restart
// (port 0), so clients read it before every connection attempt.
type crashBroker struct {
	mu   sync.Mutex
	p    *mqtttest.Process
	addr atomic.Pointer[string]
}

func newCrashBroker(t *testing.T, cfgPath string) *crashBroker {
	b := &crashBroker{}
	b.restart(t, cfgPath)
	return b
}

func (b *crashBroker) kill(t *testing.T) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.p.Kill(t)
}

func (b *crashBroker) restart(t *testing.T, cfgPath string) {
	p := mqtttest.StartProcess(t, cfgPath)
	b.mu.Lock()
	b.p = p
	b.mu.Unlock()
	addr := p.MQTTAddr
	b.addr.Store(&addr)
}

func (b *crashBroker) Addr() string { return *b.addr.Load() }

// v3Dial describes a paho 3.1.1 connection for the crash and soak tests.
type v3Dial struct {
	URL            string // tcp://host:port or ws://host:port/path
	User, Password string
	ClientID       string // default: User
	Clean          bool
	OnMessage      func(paho.Message) // nil: messages are dropped
}

// dial connects a fresh paho client without automatic reconnect (the
// caller's loop reconnects); lost is closed when the connection ends. A
// fresh client per connection keeps paho from resending its own copies:
// resends are the caller's, and counted.
func (d v3Dial) dial() (paho.Client, <-chan struct{}, error) {
	lost := make(chan struct{})
	var once sync.Once
	if d.ClientID == "" {
		d.ClientID = d.User
	}
	opts := paho.NewClientOptions().
		AddBroker(d.URL).
		SetClientID(d.ClientID).
		SetUsername(d.User).
		SetPassword(d.Password).
		SetCleanSession(d.Clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetWriteTimeout(5 * time.Second).
		SetConnectionLostHandler(func(paho.Client, error) { once.Do(func() { close(lost) }) })
	if d.OnMessage != nil {
		opts.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { d.OnMessage(m) })
	}
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		c.Disconnect(0)
		return nil, nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, nil, err
	}
	return c, lost, nil
}

// dialV3 connects uid with its token and a persistent session to addr.
func dialV3(addr, uid, token string, onMessage func(paho.Message)) (paho.Client, <-chan struct{}, error) {
	return v3Dial{URL: "tcp://" + addr, User: uid, Password: token, OnMessage: onMessage}.dial()
}

// pause sleeps d unless stop closes first; it reports whether stop closed.
func pause(stop <-chan struct{}, d time.Duration) bool {
	select {
	case <-stop:
		return true
	case <-time.After(d):
		return false
	}
}

// crashMsg is one logical message: the seq-th from a sender to a recipient.
type crashMsg struct {
	to  *crashRecipient
	seq int
}

type crashInflight struct {
	m   crashMsg
	tok paho.Token
}

// crashSender sends to every recipient in turn, Window publishes in flight,
// and resends what was not acknowledged when the connection broke.
type crashSender struct {
	uid        string
	recipients []*crashRecipient
	p          crashParams

	next      int               // round-robin position
	seqs      map[string]int    // next seq per recipient
	acked     map[string][]bool // "s>r" -> seq -> PUBACKed
	published int
	resent    int
	attempt   int
}

func (s *crashSender) key(r *crashRecipient) string { return s.uid + ">" + r.uid }

func (s *crashSender) newMsg() crashMsg {
	if s.seqs == nil {
		s.seqs = map[string]int{}
	}
	r := s.recipients[s.next%len(s.recipients)]
	s.next++
	seq := s.seqs[r.uid]
	s.seqs[r.uid]++
	return crashMsg{to: r, seq: seq}
}

func (s *crashSender) markAcked(m crashMsg) {
	k := s.key(m.to)
	v := s.acked[k]
	for len(v) <= m.seq {
		v = append(v, false)
	}
	v[m.seq] = true
	s.acked[k] = v
}

func (s *crashSender) run(t *testing.T, b *crashBroker, stop <-chan struct{}) {
	token := mqtttest.Token(t, s.uid)
	interval := time.Duration(float64(time.Second) / s.p.Rate)
	nextSend := time.Now()
	var (
		c     paho.Client
		lost  <-chan struct{}
		out   []crashInflight
		retry []crashMsg
	)
	// settle moves finished publishes out of out; when broken, the rest go
	// back to retry, in order, ahead of what already waits there.
	settle := func(broken bool) {
		var again []crashMsg
		for _, f := range out {
			select {
			case <-f.tok.Done():
				if f.tok.Error() == nil {
					s.markAcked(f.m)
					continue
				}
			default:
			}
			again = append(again, f.m)
		}
		out = nil
		if broken {
			retry = append(again, retry...)
		}
	}
	defer func() {
		if c != nil {
			c.Disconnect(100)
		}
	}()
	for {
		select {
		case <-stop:
			// Give what is in flight a moment to be acknowledged; anything
			// without a PUBACK is not counted as acked.
			deadline := time.After(5 * time.Second)
			for _, f := range out {
				select {
				case <-f.tok.Done():
				case <-lost:
				case <-deadline:
				}
			}
			settle(false)
			return
		default:
		}
		if c == nil {
			var err error
			c, lost, err = dialV3(b.Addr(), s.uid, token, nil)
			if err != nil {
				c = nil
				pause(stop, 100*time.Millisecond) // the broker is restarting
				continue
			}
		}
		for len(out) < s.p.Window {
			var m crashMsg
			if len(retry) > 0 {
				m, retry = retry[0], retry[1:]
				s.resent++
			} else {
				if d := time.Until(nextSend); d > 0 {
					if len(out) > 0 {
						break // wait for acks meanwhile
					}
					if pause(stop, d) {
						break
					}
				}
				nextSend = nextSend.Add(interval)
				if time.Until(nextSend) < -time.Second { // do not burst after an outage
					nextSend = time.Now()
				}
				m = s.newMsg()
			}
			s.attempt++
			payload := fmt.Sprintf(`{"uid":%q,"msg":"%s>%s#%d.%d"}`, m.to.uid, s.uid, m.to.uid, m.seq, s.attempt)
			out = append(out, crashInflight{m: m, tok: c.Publish("im/sendmsg", 1, false, payload)})
			s.published++
		}
		if len(out) == 0 {
			continue
		}
		select {
		case <-out[0].tok.Done():
			if out[0].tok.Error() == nil {
				s.markAcked(out[0].m)
				out = out[1:]
				continue
			}
		case <-lost:
		case <-time.After(15 * time.Second):
		case <-stop:
			continue
		}
		// The connection broke (or stalled): whatever has no PUBACK is resent
		// on the next connection.
		settle(true)
		c.Disconnect(0)
		c = nil
	}
}

// crashRecipient records what reaches its inbox.
type crashRecipient struct {
	uid    string
	online bool

	mu         sync.Mutex
	got        []crashDelivery
	subscribed bool
	conns      int // connections so far; deliveries are tagged with it

	stopCh chan struct{}
	done   chan struct{}
}

// crashDelivery is one message as received.
type crashDelivery struct {
	from    string
	seq     int
	attempt int
	conn    int
	bad     string // not a well-formed test message: why
}

func newCrashRecipient(uid string, online bool) *crashRecipient {
	return &crashRecipient{uid: uid, online: online, stopCh: make(chan struct{}), done: make(chan struct{})}
}

func (r *crashRecipient) start(t *testing.T, b *crashBroker) {
	token := mqtttest.Token(t, r.uid)
	go func() {
		defer close(r.done)
		for {
			select {
			case <-r.stopCh:
				return
			default:
			}
			r.mu.Lock()
			r.conns++
			conn := r.conns
			r.mu.Unlock()
			c, lost, err := dialV3(b.Addr(), r.uid, token, func(m paho.Message) { r.record(m, conn) })
			if err != nil {
				pause(r.stopCh, 100*time.Millisecond)
				continue
			}
			// After a crash the broker has no session: subscribe on every
			// connection (renewing an existing subscription is harmless).
			tok := c.Subscribe("inbox/"+r.uid, 1, nil)
			if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
				c.Disconnect(0)
				continue
			}
			r.mu.Lock()
			r.subscribed = true
			r.mu.Unlock()
			select {
			case <-lost:
			case <-r.stopCh:
				c.Disconnect(250)
				return
			}
		}
	}()
}

func (r *crashRecipient) waitSubscribed(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		r.mu.Lock()
		ok := r.subscribed
		r.mu.Unlock()
		if ok {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (r *crashRecipient) stop() {
	close(r.stopCh)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
	}
}

func (r *crashRecipient) record(m paho.Message, conn int) {
	d := crashDelivery{conn: conn}
	var env struct {
		Method string      `json:"_method_"`
		UID    json.Number `json:"uid"`
		Ct     string      `json:"ct"`
	}
	err := json.Unmarshal(m.Payload(), &env)
	switch {
	case err == nil && env.Method == "Logout":
		return // a newer login of this user ended an old connection: not a message
	case err != nil || env.Method != "SendMsg":
		d.bad = "not a SendMsg: " + string(m.Payload())
	default:
		d.bad = r.parse(&d, env.Ct, env.UID.String())
	}
	r.mu.Lock()
	r.got = append(r.got, d)
	r.mu.Unlock()
}

// parse reads "from>to#seq.attempt" into d and returns what is wrong with
// it, "" when nothing: the content must name this recipient and the
// broker-stamped uid the sender in it.
func (r *crashRecipient) parse(d *crashDelivery, ct, stamped string) string {
	from, rest, ok1 := strings.Cut(ct, ">")
	to, nums, ok2 := strings.Cut(rest, "#")
	seq, attempt, ok3 := strings.Cut(nums, ".")
	var err1, err2 error
	d.seq, err1 = strconv.Atoi(seq)
	d.attempt, err2 = strconv.Atoi(attempt)
	switch {
	case !ok1 || !ok2 || !ok3 || err1 != nil || err2 != nil:
		return "unexpected content: " + ct
	case to != r.uid || stamped != from:
		return fmt.Sprintf("misrouted or wrongly stamped: uid=%s ct=%s", stamped, ct)
	}
	d.from = from
	return ""
}

// missing counts acked messages not (yet) received.
func missing(expect map[string][]bool, recipients []*crashRecipient) int {
	n := 0
	for _, r := range recipients {
		seen := r.seen()
		for k, seqs := range expect {
			if !strings.HasSuffix(k, ">"+r.uid) {
				continue
			}
			from := k[:strings.IndexByte(k, '>')]
			for seq, acked := range seqs {
				if acked && !seen[from][seq] {
					n++
				}
			}
		}
	}
	return n
}

func (r *crashRecipient) seen() map[string]map[int]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]map[int]bool{}
	for _, d := range r.got {
		if d.bad != "" {
			continue
		}
		if out[d.from] == nil {
			out[d.from] = map[int]bool{}
		}
		out[d.from][d.seq] = true
	}
	return out
}

// count adds the recipient's deliveries, order violations and duplicates.
func (r *crashRecipient) count(expect map[string][]bool, res *crashResult) {
	r.mu.Lock()
	defer r.mu.Unlock()
	type first struct{ attempt, conn int }
	seen := map[string]map[int]first{}
	top := map[string]int{}
	for _, d := range r.got {
		res.Delivered++
		if d.bad != "" {
			res.Bad++
			continue
		}
		if seen[d.from] == nil {
			seen[d.from] = map[int]first{}
			top[d.from] = -1
		}
		if f, ok := seen[d.from][d.seq]; ok {
			res.Dup++
			switch {
			case f.attempt != d.attempt:
				res.DupResend++
			case f.conn != d.conn:
				res.DupRedelivery++
			default:
				res.DupSameConn++
			}
			continue
		}
		seen[d.from][d.seq] = first{d.attempt, d.conn}
		if d.seq < top[d.from] {
			res.Order++
		}
		if d.seq > top[d.from] {
			top[d.from] = d.seq
		}
		if seqs := expect[d.from+">"+r.uid]; d.seq >= len(seqs) || !seqs[d.seq] {
			res.UnackedDelivered++
		}
	}
}

// report describes what went wrong for this recipient, at most n lines per kind.
func (r *crashRecipient) report(expect map[string][]bool, n int) []string {
	var out []string
	seen := r.seen()
	lost := 0
	for k, seqs := range expect {
		if !strings.HasSuffix(k, ">"+r.uid) {
			continue
		}
		from := k[:strings.IndexByte(k, '>')]
		for seq, acked := range seqs {
			if acked && !seen[from][seq] {
				if lost < n {
					out = append(out, fmt.Sprintf("lost: %s seq %d (online=%v)", k, seq, r.online))
				}
				lost++
			}
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	bad := 0
	top := map[string]int{}
	had := map[string]map[int]bool{}
	for i, d := range r.got {
		if d.bad != "" {
			if bad < n {
				out = append(out, fmt.Sprintf("%s: delivery %d: %s", r.uid, i, d.bad))
			}
			bad++
			continue
		}
		if had[d.from] == nil {
			had[d.from] = map[int]bool{}
		}
		if !had[d.from][d.seq] && d.seq < top[d.from] && bad < n {
			out = append(out, fmt.Sprintf("order: %s>%s seq %d after %d (delivery %d, connection %d)", d.from, r.uid, d.seq, top[d.from], i, d.conn))
			bad++
		}
		had[d.from][d.seq] = true
		if d.seq > top[d.from] {
			top[d.from] = d.seq
		}
	}
	return out
}
