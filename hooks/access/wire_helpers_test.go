package access

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
	"golang.org/x/crypto/bcrypt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/logbuf"
)

// wait bounds every wait in these tests. It is generous: a missed deadline
// means something that never happens, not a slow machine.
const wait = 10 * time.Second

// Protocol versions as they appear in CONNECT.
const (
	v311 byte = 4
	v5   byte = 5
)

// testSecret signs the fixture's tokens.
var testSecret = []byte("access-hook-test-secret-0123456789abcdef")

// Static accounts of every fixture.
const (
	opsName         = "ops" // RoleAdmin
	opsPassword     = "ops-password-7f3a"
	backendName     = "backend" // RoleService
	backendPassword = "backend-password-9c2e"
)

// The rules of every fixture: rules for authenticated accounts open public/
// (read and write), devices/{uid}/ and clients/{client id} (read);
// anonymous rules open lobby/.
var (
	fixtureRules     = []string{"readwrite public/#", "read devices/%u/#", "read clients/%c"}
	fixtureAnonRules = []string{"readwrite lobby/#"}
)

var (
	hashOnce             sync.Once
	opsHash, backendHash string
	hashErr              error
	discardLog           = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// lowCostHash is a bcrypt hash at the lowest cost: the hook does not care
// about the cost, and tests stay fast.
func lowCostHash(t testing.TB, password string) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func fixtureAccounts(t testing.TB) *auth.Accounts {
	t.Helper()
	hashOnce.Do(func() {
		var h []byte
		if h, hashErr = bcrypt.GenerateFromPassword([]byte(opsPassword), bcrypt.MinCost); hashErr != nil {
			return
		}
		opsHash = string(h)
		if h, hashErr = bcrypt.GenerateFromPassword([]byte(backendPassword), bcrypt.MinCost); hashErr != nil {
			return
		}
		backendHash = string(h)
	})
	if hashErr != nil {
		t.Fatal(hashErr)
	}
	accounts, err := auth.NewAccounts([]auth.Account{
		{Name: opsName, PasswordHash: opsHash, Role: auth.RoleAdmin},
		{Name: backendName, PasswordHash: backendHash, Role: auth.RoleService},
	})
	if err != nil {
		t.Fatal(err)
	}
	return accounts
}

func mustPolicy(t testing.TB, rules, anonymous []string) *acl.Policy {
	t.Helper()
	parse := func(lines []string) []acl.Rule {
		var out []acl.Rule
		for _, l := range lines {
			r, err := acl.ParseRule(l)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, r)
		}
		return out
	}
	p, err := acl.NewPolicy(parse(rules), parse(anonymous))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// logBuffer collects log output (internal/logbuf).
type logBuffer = logbuf.Buffer

// setup shapes a fixture.
type setup struct {
	allowAnonymous bool
	maxSubs        int
	maxClientID    int
	noTokens       bool // Options.Tokens nil
	noAccounts     bool // Options.Accounts nil
	serve          bool // run mochi's event loop (session expiry)
}

// fixture is a mochi server with the access hook as its only hook, the
// fixture's accounts, tokens and rules, and recorders for the callbacks.
type fixture struct {
	s        *mqtt.Server
	h        *Hook
	tokens   *auth.Tokens
	accounts *auth.Accounts
	logs     *logBuffer

	denied atomic.Int64 // OnACLDenied calls

	mu        sync.Mutex
	failures  []string   // OnAuthFailure reasons, in order
	takeovers []takeover // BeforeTakeover calls, in order
}

// takeover is one BeforeTakeover call.
type takeover struct {
	old        *mqtt.Client
	wasClosed  bool   // old.Closed() when called
	internalID string // old.ID when called
}

func newFixture(t *testing.T, o setup) *fixture {
	t.Helper()
	tokens, err := auth.NewTokens(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{
		s: mqtt.New(&mqtt.Options{
			Logger:       discardLog,
			InlineClient: true, // f.publish
		}),
		h:        new(Hook),
		tokens:   tokens,
		accounts: fixtureAccounts(t),
		logs:     new(logBuffer),
	}
	opts := &Options{
		Server:           f.s,
		Tokens:           f.tokens,
		Accounts:         f.accounts,
		Policy:           mustPolicy(t, fixtureRules, fixtureAnonRules),
		AllowAnonymous:   o.allowAnonymous,
		Log:              slog.New(slog.NewTextHandler(f.logs, nil)),
		MaxSubscriptions: o.maxSubs,
		MaxClientID:      o.maxClientID,
		OnAuthFailure: func(reason string) {
			f.mu.Lock()
			f.failures = append(f.failures, reason)
			f.mu.Unlock()
		},
		OnACLDenied: func() { f.denied.Add(1) },
		BeforeTakeover: func(old *mqtt.Client) {
			f.mu.Lock()
			f.takeovers = append(f.takeovers, takeover{old: old, wasClosed: old.Closed(), internalID: old.ID})
			f.mu.Unlock()
		},
	}
	if o.noTokens {
		opts.Tokens = nil
	}
	if o.noAccounts {
		opts.Accounts = nil
	}
	if err := f.s.AddHook(f.h, opts); err != nil {
		t.Fatal(err)
	}
	if o.serve {
		if err := f.s.Serve(); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = f.s.Close() })
	return f
}

// failureCount is how many logins were refused so far.
func (f *fixture) failureCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.failures)
}

// failuresSince returns the refusal reasons after the first n.
func (f *fixture) failuresSince(n int) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.failures[n:]...)
}

func (f *fixture) takeoverList() []takeover {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]takeover(nil), f.takeovers...)
}

// token mints a one-hour token for uid with the fixture's secret.
func (f *fixture) token(t testing.TB, uid string) string {
	t.Helper()
	tok, err := f.tokens.Mint(auth.Claims{UID: uid, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// signJWT signs claims with secret and method, for tokens Mint refuses to make.
func signJWT(t testing.TB, secret []byte, method jwt.SigningMethod, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(secret)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// algNoneJWT is an unsigned token for sub.
func algNoneJWT(sub string) string {
	enc := base64.RawURLEncoding.EncodeToString
	return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." +
		enc([]byte(fmt.Sprintf(`{"sub":%q,"exp":%d}`, sub, time.Now().Add(time.Hour).Unix()))) + "."
}

// identityCount is how many identities the hook holds.
func identityCount(h *Hook) int {
	n := 0
	h.identities.Range(func(_, _ any) bool { n++; return true })
	return n
}

// authed runs OnConnectAuthenticate for a client without a connection (no
// wire), as mochi would after CONNECT, and returns the client when it was
// accepted.
func (f *fixture) authed(t testing.TB, user, password, clientID, remote string) (*mqtt.Client, bool) {
	t.Helper()
	cl := f.s.NewClient(nil, "t", clientID, false)
	cl.Net.Remote = remote
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: v311,
		Connect: packets.ConnectParams{ClientIdentifier: clientID, Username: []byte(user), Password: []byte(password),
			UsernameFlag: user != "", PasswordFlag: password != ""}}
	cl.ParseConnect("t", pk)
	return cl, f.h.OnConnectAuthenticate(cl, pk)
}

// mustAuthed is authed for logins that must succeed.
func (f *fixture) mustAuthed(t testing.TB, user, password, clientID string) *mqtt.Client {
	t.Helper()
	cl, ok := f.authed(t, user, password, clientID, "192.0.2.1:1883")
	if !ok {
		t.Fatalf("login of %q (client %q) refused: %v", user, clientID, f.failuresSince(0))
	}
	return cl
}

// client returns the connected client with the internal id.
func (f *fixture) client(t testing.TB, internalID string) *mqtt.Client {
	t.Helper()
	cl, ok := f.s.Clients.Get(internalID)
	if !ok {
		t.Fatalf("no client %q on the server", internalID)
	}
	return cl
}

// publish sends a message from the broker itself (mochi's inline client),
// which bypasses the write check but not the read check per subscriber.
func (f *fixture) publish(t testing.TB, topic, payload string) {
	t.Helper()
	if err := f.s.Publish(topic, []byte(payload), false, 0); err != nil {
		t.Fatal(err)
	}
}

// login is one CONNECT.
type login struct {
	user, pass string
	id         string // client id
	clean      bool   // clean session (3.1.1) / clean start (5)
	expiry     uint32 // MQTT 5 session expiry interval
	will       string // will topic ("" for none)
}

// wire is the client end of one net.Pipe connection to the fixture's
// server; mochi serves the other end as it would a TCP connection.
type wire struct {
	version byte
	conn    net.Conn
	in      chan packets.Packet // what the server wrote, decoded; closed at EOF
	readErr error               // why the reading ended; set before in is closed
	done    chan struct{}       // closed when EstablishConnection returned
	err     error               // what it returned; set before done is closed
	pid     uint16
}

// dial opens a connection, sends CONNECT for l and returns the connection
// and the first packet the server answered with.
func (f *fixture) dial(t testing.TB, version byte, l login) (*wire, packets.Packet) {
	t.Helper()
	srv, cli := net.Pipe()
	w := &wire{version: version, conn: cli, in: make(chan packets.Packet, 256), done: make(chan struct{})}
	go func() {
		w.err = f.s.EstablishConnection("t", srv)
		close(w.done)
	}()
	go w.readLoop()
	t.Cleanup(func() {
		_ = cli.Close()
		select {
		case <-w.done:
		case <-time.After(wait):
			t.Errorf("connection %q: server still serving %v after the client closed", l.id, wait)
		}
	})
	c := packets.ConnectParams{
		ProtocolName:     []byte("MQTT"),
		Clean:            l.clean,
		Keepalive:        60,
		ClientIdentifier: l.id,
		Username:         []byte(l.user),
		Password:         []byte(l.pass),
		UsernameFlag:     l.user != "",
		PasswordFlag:     l.pass != "",
	}
	if l.will != "" {
		c.WillFlag, c.WillTopic, c.WillPayload = true, l.will, []byte("gone")
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Connect: c}
	if version == v5 && l.expiry > 0 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = l.expiry, true
	}
	w.send(t, pk)
	ack := w.next(t)
	if ack.FixedHeader.Type != packets.Connack {
		t.Fatalf("first packet from the server is type %d, want CONNACK", ack.FixedHeader.Type)
	}
	return w, ack
}

// connect dials and requires the login to be accepted.
func (f *fixture) connect(t testing.TB, version byte, l login) *wire {
	t.Helper()
	w, ack := f.dial(t, version, l)
	if ack.ReasonCode != 0 {
		t.Fatalf("login %q/%q refused: CONNACK %#x, reasons %v", l.user, l.id, ack.ReasonCode, f.failuresSince(0))
	}
	return w
}

func (w *wire) readLoop() {
	defer close(w.in)
	br := bufio.NewReader(w.conn)
	for {
		hb, err := br.ReadByte()
		if err != nil {
			w.readErr = err
			return
		}
		pk := packets.Packet{ProtocolVersion: w.version}
		if err := pk.FixedHeader.Decode(hb); err != nil {
			w.readErr = err
			return
		}
		n, _, err := packets.DecodeLength(br)
		if err != nil {
			w.readErr = err
			return
		}
		pk.FixedHeader.Remaining = n
		body := make([]byte, n)
		if _, err := io.ReadFull(br, body); err != nil {
			w.readErr = err
			return
		}
		switch pk.FixedHeader.Type {
		case packets.Connack:
			err = pk.ConnackDecode(body)
		case packets.Suback:
			err = pk.SubackDecode(body)
		case packets.Unsuback:
			err = pk.UnsubackDecode(body)
		case packets.Publish:
			err = pk.PublishDecode(body)
		case packets.Disconnect:
			err = pk.DisconnectDecode(body)
		case packets.Pingresp:
			err = pk.PingrespDecode(body)
		default:
			err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
		}
		if err != nil {
			w.readErr = fmt.Errorf("decode type %d: %w", pk.FixedHeader.Type, err)
			return
		}
		w.in <- pk
	}
}

// send encodes pk in the connection's protocol version and writes it.
func (w *wire) send(t testing.TB, pk packets.Packet) {
	t.Helper()
	pk.ProtocolVersion = w.version
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connect:
		err = pk.ConnectEncode(&buf)
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Unsubscribe:
		err = pk.UnsubscribeEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	default:
		err = fmt.Errorf("cannot send packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := w.conn.Write(buf.Bytes()); err != nil {
		t.Fatalf("write packet type %d: %v", pk.FixedHeader.Type, err)
	}
}

// next returns the next packet the server wrote.
func (w *wire) next(t testing.TB) packets.Packet {
	t.Helper()
	select {
	case pk, ok := <-w.in:
		if !ok {
			t.Fatalf("connection closed instead of a packet (%v)", w.readErr)
		}
		return pk
	case <-time.After(wait):
		t.Fatalf("no packet from the server within %v", wait)
	}
	return packets.Packet{}
}

// rest returns every packet the server still writes until it closes the
// connection.
func (w *wire) rest(t testing.TB) []packets.Packet {
	t.Helper()
	var out []packets.Packet
	deadline := time.After(wait)
	for {
		select {
		case pk, ok := <-w.in:
			if !ok {
				return out
			}
			out = append(out, pk)
		case <-deadline:
			t.Fatalf("connection still open after %v (received %d packets)", wait, len(out))
		}
	}
}

// finished waits until the server is done with the connection (mochi has
// run OnDisconnect and its cleanup) and returns EstablishConnection's error.
func (w *wire) finished(t testing.TB) error {
	t.Helper()
	select {
	case <-w.done:
		return w.err
	case <-time.After(wait):
		t.Fatalf("server still serving the connection after %v", wait)
	}
	return nil
}

// drop closes the client end without DISCONNECT, as a crashed client would,
// and waits until the server is done with the connection.
func (w *wire) drop(t testing.TB) {
	t.Helper()
	_ = w.conn.Close()
	w.finished(t)
}

// subscribe sends one SUBSCRIBE for filters at qos and returns the SUBACK's
// reason codes.
func (w *wire) subscribe(t testing.TB, qos byte, filters ...string) []byte {
	t.Helper()
	codes, err := w.trySubscribe(qos, filters...)
	if err != nil {
		t.Fatal(err)
	}
	return codes
}

// trySubscribe is subscribe for goroutines other than the test's.
func (w *wire) trySubscribe(qos byte, filters ...string) ([]byte, error) {
	w.pid++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, PacketID: w.pid, ProtocolVersion: w.version}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		return nil, err
	}
	_ = w.conn.SetWriteDeadline(time.Now().Add(wait))
	if _, err := w.conn.Write(buf.Bytes()); err != nil {
		return nil, fmt.Errorf("write SUBSCRIBE: %w", err)
	}
	select {
	case ack, ok := <-w.in:
		switch {
		case !ok:
			return nil, fmt.Errorf("connection closed instead of SUBACK (%v)", w.readErr)
		case ack.FixedHeader.Type != packets.Suback || ack.PacketID != w.pid:
			return nil, fmt.Errorf("answer to SUBSCRIBE %d: type %d id %d, want SUBACK", w.pid, ack.FixedHeader.Type, ack.PacketID)
		case len(ack.ReasonCodes) != len(filters):
			return nil, fmt.Errorf("SUBACK has %d codes for %d filters", len(ack.ReasonCodes), len(filters))
		}
		return ack.ReasonCodes, nil
	case <-time.After(wait):
		return nil, fmt.Errorf("no SUBACK within %v", wait)
	}
}

// unsubscribe sends one UNSUBSCRIBE and waits for the UNSUBACK.
func (w *wire) unsubscribe(t testing.TB, filters ...string) {
	t.Helper()
	w.pid++
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Unsubscribe, Qos: 1}, PacketID: w.pid}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f})
	}
	w.send(t, pk)
	if ack := w.next(t); ack.FixedHeader.Type != packets.Unsuback || ack.PacketID != w.pid {
		t.Fatalf("answer to UNSUBSCRIBE %d: type %d id %d, want UNSUBACK", w.pid, ack.FixedHeader.Type, ack.PacketID)
	}
}

// ping checks that the connection is served: PINGREQ gets PINGRESP.
func (w *wire) ping(t testing.TB) {
	t.Helper()
	w.send(t, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Pingreq}})
	if pk := w.next(t); pk.FixedHeader.Type != packets.Pingresp {
		t.Fatalf("answer to PINGREQ: type %d, want PINGRESP", pk.FixedHeader.Type)
	}
}

// nextPublish returns the next packet, which must be a PUBLISH.
func (w *wire) nextPublish(t testing.TB) packets.Packet {
	t.Helper()
	pk := w.next(t)
	if pk.FixedHeader.Type != packets.Publish {
		t.Fatalf("got packet type %d, want PUBLISH", pk.FixedHeader.Type)
	}
	return pk
}

// waitUntil polls cond until it holds, failing the test at the deadline.
func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", wait, what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// internalID is the session id the hook gives a login.
func internalID(uid, clientID string) string { return uid + IDSeparator + clientID }

// versionName names a protocol version in subtest names.
func versionName(v byte) string {
	if v == v5 {
		return "5.0"
	}
	return "3.1.1"
}

// rawExchange sends CONNECT for l and returns every byte the server writes
// until it closes the connection.
func (f *fixture) rawExchange(t testing.TB, version byte, l login) []byte {
	t.Helper()
	srv, cli := net.Pipe()
	done := make(chan struct{})
	go func() {
		_ = f.s.EstablishConnection("t", srv)
		close(done)
	}()
	defer func() {
		_ = cli.Close()
		<-done
	}()
	c := packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: l.clean, Keepalive: 60, ClientIdentifier: l.id,
		Username: []byte(l.user), Password: []byte(l.pass), UsernameFlag: l.user != "", PasswordFlag: l.pass != "",
	}
	if l.will != "" {
		c.WillFlag, c.WillTopic, c.WillPayload = true, l.will, []byte("gone")
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version, Connect: c}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		t.Fatal(err)
	}
	_ = cli.SetDeadline(time.Now().Add(wait))
	go func() { _, _ = cli.Write(buf.Bytes()) }()
	out, err := io.ReadAll(cli)
	if err != nil {
		t.Fatalf("read until the server closed: %v (got % x)", err, out)
	}
	return out
}

// adminToken mints a one-hour token with the admin role for uid.
func adminToken(t testing.TB, f *fixture, uid string) string {
	t.Helper()
	tok, err := f.tokens.Mint(auth.Claims{UID: uid, TTL: time.Hour, Role: auth.RoleAdmin})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
