package broker_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// Attacks on the wire and on resources. Each test also runs a bystander
// pair that keeps chatting through the attack: the broker must keep
// serving everyone else. docs/security.md lists every row.

// TestAttack_OversizePacket: a packet over mqtt.maximum_packet_size (256 KiB)
// ends that connection before the broker reads (or allocates) its body.
func TestAttack_OversizePacket(t *testing.T) {
	b, logs := mqtttest.StartLogged(t, loggedConfig(t))
	by := startBystanders(t, b.MQTTAddr())
	tooBig := bytes.Repeat([]byte("x"), 300<<10)

	for _, tc := range []struct {
		name    string
		version byte
	}{{"v3", 4}, {"v5", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "10666"
			conn := rawLogin(t, b.MQTTAddr(), tc.version, uid)
			defer conn.Close()
			// Only the header goes out in full: the broker must refuse on the
			// announced length, not after buffering 300 KiB.
			pk := rawPublish(tc.version, []byte("im/sendmsg"), 1, 7, tooBig)
			if _, err := conn.Write(pk[:64]); err != nil {
				t.Fatal(err)
			}
			code, closed := readUntilClosed(conn, 5*time.Second)
			if !closed {
				t.Fatal("connection still open after an oversize packet")
			}
			// MQTT 5 is told why (0x95); 3.1.1 has no server DISCONNECT.
			if want := map[byte]byte{4: 0, 5: 0x95}[tc.version]; code != want {
				t.Fatalf("DISCONNECT reason %#x, want %#x", code, want)
			}
			logs.Wait(t, wait, "disconnected", "uid="+uid, "too large")
		})
	}
	// A well-behaved client close to the limit is still served.
	c := mqtttest.MustV3(t, b.MQTTAddr(), "10777", mqtttest.Token(t, "10777"), mqtttest.V3Options{Subscribe: true})
	c.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"`+strings.Repeat("y", 60<<10)+`"}`)
	c.Inbox.NextMethod(t, "MsgSent", wait)
	by.check(t)
}

// TestAttack_HugeJSON: request payloads up to the packet limit are refused
// by size before they are decoded (too_large, MQTT 5 PUBACK 0x99); wide
// objects under the payload cap are decoded in bounded time; the
// connection stays up.
func TestAttack_HugeJSON(t *testing.T) {
	b, logs := mqtttest.StartLogged(t, loggedConfig(t))
	by := startBystanders(t, b.MQTTAddr())
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V5Options{Subscribe: true})
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})

	// 250 KiB: a valid object, just under maximum_packet_size.
	huge := `{"uid":10021,"msg":"x","extra":[` + strings.Repeat(`{"a":[1,2,3]},`, 250<<10/14) + `0]}`
	// 250 KiB of keys: the same size, many small allocations.
	manyKeys := `{"uid":10021,"msg":"x"` + strings.Repeat(`,"k":1`, 250<<10/6) + `}`
	// A huge string in a field that has no length check of its own.
	hugeField := `{"uid":10021,"msg":"x","cid":"` + strings.Repeat("c", 250<<10) + `"}`
	for _, tc := range []struct{ name, payload string }{
		{"250 KiB nested", huge}, {"250 KiB of keys", manyKeys}, {"250 KiB field", hugeField},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if len(tc.payload) < 200<<10 || len(tc.payload) > 256<<10-64 {
				t.Fatalf("payload is %d bytes, want 200..256 KiB", len(tc.payload))
			}
			v3.MustPub(t, "im/sendmsg", tc.payload)
			if e := v3.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "too_large" {
				t.Fatalf("v3: %s", e.Raw)
			}
			code, err := v5.Pub("im/sendmsg", tc.payload)
			if err != nil || code != 0x99 {
				t.Fatalf("v5: PUBACK %#x err %v, want 0x99", code, err)
			}
			if e := v5.Inbox.NextMethod(t, "Error", wait); e.Str("code") != "too_large" {
				t.Fatalf("v5: %s", e.Raw)
			}
			logs.Wait(t, wait, "request refused", "uid=10002", "code=too_large")
		})
	}
	// Wide but under the payload cap (2 x max_message_bytes + 4 KiB): decoded,
	// unknown fields ignored, delivered.
	start := time.Now()
	wide := `{"uid":10021,"msg":"wide"` + strings.Repeat(`,"k":1`, 100<<10/6) + `}`
	v3.MustPub(t, "im/sendmsg", wide)
	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "wide")
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("a 100 KiB object took %s", d)
	}
	// The same connections still work.
	v3.MustPub(t, "im/sendmsg", `{"uid":10021,"msg":"after"}`)
	checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), "10001", "after")
	if code, err := v5.Pub("im/sendmsg", `{"uid":10021,"msg":"v5 after"}`); err != nil || code != 0 {
		t.Fatalf("v5 after: %#x %v", code, err)
	}
	by.check(t)
}

// TestAttack_InvalidUTF8Topic: a topic name or filter that is not UTF-8 is
// a malformed packet: the connection is closed (MQTT-1.5.4-1), nothing is
// routed. (Invalid UTF-8 in payloads: TestBadInput_ErrorThenConnectionStillWorks.)
func TestAttack_InvalidUTF8Topic(t *testing.T) {
	b, logs := mqtttest.StartLogged(t, loggedConfig(t))
	by := startBystanders(t, b.MQTTAddr())
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	msg := []byte(`{"uid":10021,"msg":"through a broken topic"}`)
	for _, tc := range []struct {
		name    string
		version byte
		packet  []byte
	}{
		{"v3 publish", 4, rawPublish(4, []byte("im/sendmsg\xff"), 1, 1, msg)},
		{"v3 publish overlong encoding", 4, rawPublish(4, []byte("im/\xc0\xafsendmsg"), 1, 1, msg)},
		{"v3 publish surrogate", 4, rawPublish(4, []byte("inbox/\xed\xa0\x80"), 1, 1, msg)},
		{"v5 publish", 5, rawPublish(5, []byte("im/sendmsg\xfe"), 1, 1, msg)},
		{"v3 subscribe", 4, rawSubscribe(4, 1, []byte("inbox/10021\xff"))},
		{"v5 subscribe", 5, rawSubscribe(5, 1, []byte("inbox/\xff/#"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			uid := "10666"
			conn := rawLogin(t, b.MQTTAddr(), tc.version, uid)
			defer conn.Close()
			if _, err := conn.Write(tc.packet); err != nil {
				t.Fatal(err)
			}
			if code, closed := readUntilClosed(conn, 5*time.Second); !closed {
				t.Fatal("connection still open after a malformed topic")
			} else if code != 0 && code != 0x81 {
				t.Fatalf("DISCONNECT reason %#x, want none or 0x81 (malformed packet)", code)
			}
			logs.Wait(t, wait, "disconnected", "uid="+uid, "invalid utf-8")
		})
	}
	bob.Inbox.None(t, 200*time.Millisecond)
	by.check(t)
}

// TestAttack_ThousandsOfSubscriptions: one client asking for thousands of
// subscriptions gets limits.max_subscriptions (default 100) of them; the
// rest are refused per filter (MQTT 5 0x87, 3.1.1 0x80), the connection
// stays up and others are not slowed down.
func TestAttack_ThousandsOfSubscriptions(t *testing.T) {
	cfg := loggedConfig(t)
	cfg.ACL.Rules = []string{"readwrite public/#"}
	b, logs := mqtttest.StartLogged(t, cfg)
	limit := cfg.Limits.MaxSubscriptions
	if limit <= 0 || limit >= 1000 {
		t.Fatalf("default max_subscriptions = %d", limit)
	}
	by := startBystanders(t, b.MQTTAddr())

	// MQTT 5: one SUBSCRIBE with 5,000 filters.
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})
	subs := make([]paho5.SubscribeOptions, 5000)
	for i := range subs {
		subs[i] = paho5.SubscribeOptions{Topic: fmt.Sprintf("public/%d", i), QoS: 1}
	}
	sa, err := subscribeV5(v5, subs)
	if sa == nil { // paho also returns an error when some filters are refused
		t.Fatal(err)
	}
	if granted, refused := countReasons(sa.Reasons, 0x87); granted != limit-1 || refused != len(subs)-granted {
		t.Fatalf("v5: %d granted, %d refused (0x87), want %d granted", granted, refused, limit-1)
	}
	// ...then 2,000 more, one SUBSCRIBE each: all refused.
	for i := 0; i < 2000; i++ {
		code, err := v5.Sub(fmt.Sprintf("public/more/%d", i), 1)
		if err != nil || code != 0x87 {
			t.Fatalf("v5 subscribe %d beyond the limit: %#x %v, want 0x87", i, code, err)
		}
	}
	logs.Wait(t, wait, "subscriptions refused: limit reached", "client=10001|10001")

	// 3.1.1: one SUBSCRIBE with 5,000 filters.
	v3 := mqtttest.MustV3(t, b.MQTTAddr(), "10002", mqtttest.Token(t, "10002"), mqtttest.V3Options{Subscribe: true})
	filters := make(map[string]byte, 5000)
	for i := 0; i < 5000; i++ {
		filters[fmt.Sprintf("public/%d", i)] = 1
	}
	tok := v3.SubscribeMultiple(filters, nil)
	if !tok.WaitTimeout(30*time.Second) || tok.Error() != nil {
		t.Fatalf("v3 subscribe: %v", tok.Error())
	}
	codes := []byte{}
	for _, c := range tok.(interface{ Result() map[string]byte }).Result() {
		codes = append(codes, c)
	}
	if granted, refused := countReasons(codes, 0x80); granted != limit-1 || refused != len(filters)-granted {
		t.Fatalf("v3: %d granted, %d refused (0x80), want %d granted", granted, refused, limit-1)
	}

	// Both still work, and a granted subscription delivers.
	v3.MustPub(t, "public/0", "granted")
	if e := v5.Inbox.Next(t, wait); e.Topic != "public/0" || string(e.Raw) != "granted" {
		t.Fatalf("granted subscription: got %s %s", e.Topic, e.Raw)
	}
	v3.MustPub(t, "im/sendmsg", `{"uid":10001,"msg":"still here"}`)
	checkSendMsg(t, v5.Inbox.NextMethod(t, "SendMsg", wait), "10002", "still here")
	by.check(t)
}

// TestAttack_WebSocketForeignOrigin: with listeners.websocket.allowed_origins
// set, an upgrade from another Origin gets HTTP 403; an allowed Origin and a
// client without Origin (native apps) connect and chat.
func TestAttack_WebSocketForeignOrigin(t *testing.T) {
	cfg := loggedConfig(t)
	cfg.Listeners.WebSocket.AllowedOrigins = []string{"https://app.example.com"}
	b, logs := mqtttest.StartLogged(t, cfg)
	by := startBystanders(t, b.MQTTAddr())
	bob := mqtttest.MustV3(t, b.MQTTAddr(), "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	url := "ws://" + b.WebSocketAddr() + "/mqtt"

	for _, origin := range []string{
		"https://evil.example", "https://app.example.com.evil.example", "http://app.example.com",
		"https://app.example.com:8443", "null", "file://", "not a url",
	} {
		t.Run("refused "+origin, func(t *testing.T) {
			conn, resp, err := dialWS(url, origin)
			if err == nil {
				conn.Close()
				t.Fatalf("upgrade from Origin %q accepted", origin)
			}
			if resp == nil || resp.StatusCode != http.StatusForbidden {
				t.Fatalf("Origin %q: response %v, err %v; want 403", origin, resp, err)
			}
			if origin != "not a url" {
				logs.Wait(t, wait, "websocket origin refused", origin)
			}
		})
	}
	for i, origin := range []string{"https://app.example.com", "https://APP.example.com", ""} {
		t.Run(fmt.Sprintf("allowed %q", origin), func(t *testing.T) {
			conn, resp, err := dialWS(url, origin)
			if err != nil {
				t.Fatalf("Origin %q: %v (%v)", origin, err, resp)
			}
			defer conn.Close()
			uid := fmt.Sprint(10030 + i)
			wsMQTT(t, conn, uid, `{"uid":10021,"msg":"from a browser"}`)
			checkSendMsg(t, bob.Inbox.NextMethod(t, "SendMsg", wait), uid, "from a browser")
		})
	}
	by.check(t)
}

// TestAttack_SlowlorisCrowd: hundreds of connections that announce a
// maximum-size CONNECT and never finish it are all closed after
// limits.connect_timeout; bystanders chat on meanwhile.
func TestAttack_SlowlorisCrowd(t *testing.T) {
	cfg := loggedConfig(t)
	cfg.Limits.ConnectTimeout = time.Second
	b, _ := mqtttest.StartLogged(t, cfg)
	by := startBystanders(t, b.MQTTAddr())

	const n = 200
	conns := make([]net.Conn, 0, n)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	// CONNECT, remaining length 262,143 (the most maximum_packet_size
	// allows), then only the protocol name.
	partial := []byte{0x10, 0xff, 0xff, 0x0f, 0x00, 0x04, 'M', 'Q', 'T', 'T'}
	for i := 0; i < n; i++ {
		c, err := net.DialTimeout("tcp", b.MQTTAddr(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		if _, err := c.Write(partial); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	open := 0
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, closed := readUntilClosed(c, 5*time.Second); !closed {
				mu.Lock()
				open++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if open > 0 || time.Since(start) > 4*time.Second {
		t.Fatalf("%d of %d half-open connections still open after %s", open, n, time.Since(start))
	}
	by.check(t)
}

// TestAttack_ConnectionFloodBystanders: a burst of connections from one
// address is cut to limits.connections_per_ip (refused before CONNACK);
// users already connected keep chatting.
func TestAttack_ConnectionFloodBystanders(t *testing.T) {
	cfg := loggedConfig(t)
	cfg.Log.Level = "debug" // refusals per IP are logged at debug level
	cfg.Limits.ConnectionsPerIP = 5
	b, logs := mqtttest.StartLogged(t, cfg)
	by := startBystanders(t, b.MQTTAddr())

	const n = 300
	var wg sync.WaitGroup
	var mu sync.Mutex
	accepted := 0
	sem := make(chan struct{}, 50)
	start := time.Now()
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			uid := fmt.Sprint(20000 + i)
			c, err := mqtttest.RawConnect(b.MQTTAddr(), packets.ConnectParams{
				ClientIdentifier: uid, Clean: true, Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid)),
			})
			if err == nil {
				mu.Lock()
				accepted++
				mu.Unlock()
				c.Close()
			}
		}()
	}
	wg.Wait()
	// The burst (2 x 5) plus 5 a second while the flood lasted, and some slack.
	if limit := 10 + int(5*time.Since(start).Seconds()) + 5; accepted > limit {
		t.Fatalf("%d of %d flood connections accepted in %s, want at most %d", accepted, n, time.Since(start), limit)
	}
	logs.Wait(t, wait, "connections refused: rate per IP exceeded")
	by.check(t)
}

// TestAttack_RefusalsAreLogged: the access-control rows tested in
// attack_test.go each leave a log line naming the account and the reason,
// and bystanders are not disturbed.
func TestAttack_RefusalsAreLogged(t *testing.T) {
	b, logs := mqtttest.StartLogged(t, loggedConfig(t))
	by := startBystanders(t, b.MQTTAddr())
	v5 := mqtttest.MustV5(t, b.MQTTAddr(), "10001", mqtttest.Token(t, "10001"), mqtttest.V5Options{Subscribe: true})

	for _, filter := range []string{"inbox/10021", "inbox/+", "#", "$share/g/inbox/10021"} {
		if code, err := v5.Sub(filter, 1); err != nil || code != 0x87 {
			t.Fatalf("subscribe %s: %#x %v", filter, code, err)
		}
		logs.Wait(t, wait, "read denied", "uid=10001", "filter="+filter)
	}
	for _, topic := range []string{"inbox/10021", "broadcast", "im/systemadmin"} {
		if code, err := v5.Pub(topic, `{"uid":10021,"content":"x"}`); err != nil || code != 0x87 {
			t.Fatalf("publish %s: %#x %v", topic, code, err)
		}
		logs.Wait(t, wait, "request refused", "uid=10001", "topic="+topic, "code=forbidden")
	}
	now := time.Now()
	for _, tc := range []struct {
		reason string
		claims jwt.MapClaims
		user   string
	}{
		{"token_expired", jwt.MapClaims{"sub": "10001", "exp": now.Add(-time.Minute).Unix()}, "10001"},
		{"token_not_yet_valid", jwt.MapClaims{"sub": "10001", "exp": now.Add(time.Hour).Unix(), "nbf": now.Add(time.Hour).Unix()}, "10001"},
		{"token_subject", jwt.MapClaims{"sub": "10001", "exp": now.Add(time.Hour).Unix()}, "10021"},
	} {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, tc.claims).SignedString([]byte(mqtttest.Secret))
		if err != nil {
			t.Fatal(err)
		}
		if c, err := mqtttest.ConnectV5(b.MQTTAddr(), tc.user, tok, mqtttest.V5Options{ClientID: "x"}); err == nil {
			c.Close()
			t.Fatalf("%s: connection accepted", tc.reason)
		} else if c == nil || c.Connack == nil || c.Connack.ReasonCode != 0x86 {
			t.Fatalf("%s: %v, want CONNACK 0x86", tc.reason, err)
		}
		logs.Wait(t, wait, "login refused", "username="+tc.user, "reason="+tc.reason)
	}
	by.check(t)
}

// loggedConfig is a test config that logs refusals (info level).
func loggedConfig(t *testing.T) broker.Config {
	t.Helper()
	cfg := mqtttest.Config(t)
	cfg.Log.Level = "info"
	return cfg
}

// bystanders are two users who chat back and forth while an attack runs.
type bystanders struct {
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	rounds  int
	slowest time.Duration
	failure string
}

// startBystanders connects two users (uids 20901 and 20902) who exchange a
// message every 50 ms until check.
func startBystanders(t *testing.T, addr string) *bystanders {
	t.Helper()
	a := mqtttest.MustV3(t, addr, "20901", mqtttest.Token(t, "20901"), mqtttest.V3Options{Subscribe: true})
	z := mqtttest.MustV3(t, addr, "20902", mqtttest.Token(t, "20902"), mqtttest.V3Options{Subscribe: true})
	by := &bystanders{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(by.done)
		from, to := a, z
		for i := 0; ; i++ {
			select {
			case <-by.stop:
				return
			case <-time.After(50 * time.Millisecond):
			}
			text := fmt.Sprintf("bystander %d", i)
			start := time.Now()
			err := from.Pub("im/sendmsg", fmt.Sprintf(`{"uid":%q,"msg":%q}`, to.UID, text))
			for err == nil {
				e, ok := to.Inbox.Wait(10 * time.Second)
				if !ok {
					err = errors.New("not delivered within 10s")
				} else if e.Method() == "SendMsg" && e.Str("ct") == text {
					break
				}
			}
			by.mu.Lock()
			if err != nil && by.failure == "" {
				by.failure = fmt.Sprintf("%s -> %s %q: %v", from.UID, to.UID, text, err)
			}
			by.rounds++
			by.slowest = max(by.slowest, time.Since(start))
			by.mu.Unlock()
			if err != nil {
				return
			}
			from, to = to, from
		}
	}()
	t.Cleanup(func() {
		select {
		case <-by.stop:
		default:
			close(by.stop)
		}
		<-by.done
	})
	return by
}

// check waits for two more rounds, stops the chat and asserts that every
// message arrived, each within 3 s.
func (by *bystanders) check(t *testing.T) {
	t.Helper()
	by.mu.Lock()
	want := by.rounds + 2
	by.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		by.mu.Lock()
		n, failure := by.rounds, by.failure
		by.mu.Unlock()
		if n >= want || failure != "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(by.stop)
	<-by.done
	by.mu.Lock()
	defer by.mu.Unlock()
	switch {
	case by.failure != "":
		t.Fatalf("bystanders: %s", by.failure)
	case by.rounds < want:
		t.Fatalf("bystanders: %d rounds, want %d", by.rounds, want)
	case by.slowest > 3*time.Second:
		t.Fatalf("bystanders: slowest round trip %s", by.slowest)
	}
	t.Logf("bystanders: %d round trips, slowest %s", by.rounds, by.slowest)
}

// rawLogin connects uid over a raw socket with its token (3.1.1 or 5).
func rawLogin(t *testing.T, addr string, version byte, uid string) net.Conn {
	t.Helper()
	p := packets.ConnectParams{ClientIdentifier: uid, Clean: true, Username: []byte(uid), Password: []byte(mqtttest.Token(t, uid))}
	connect := mqtttest.RawConnect
	if version == 5 {
		connect = mqtttest.RawConnectV5
	}
	conn, err := connect(addr, p)
	if err != nil {
		t.Fatalf("raw connect %s: %v", uid, err)
	}
	return conn
}

// readUntilClosed reads and discards until the peer closes the connection
// or d passes; code is the reason of a DISCONNECT read on the way (0: none).
func readUntilClosed(conn net.Conn, d time.Duration) (code byte, closed bool) {
	_ = conn.SetReadDeadline(time.Now().Add(d))
	for {
		typ, body, err := mqtttest.ReadRawPacket(conn)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return code, false
			}
			return code, true // EOF, reset, or a packet cut short by the close
		}
		if typ == packets.Disconnect && len(body) > 0 {
			code = body[0]
		}
	}
}

// rawPublish builds a PUBLISH by hand, so the topic can be anything.
func rawPublish(version byte, topic []byte, qos byte, id uint16, payload []byte) []byte {
	var body bytes.Buffer
	body.Write([]byte{byte(len(topic) >> 8), byte(len(topic))})
	body.Write(topic)
	if qos > 0 {
		body.Write([]byte{byte(id >> 8), byte(id)})
	}
	if version == 5 {
		body.WriteByte(0) // no properties
	}
	body.Write(payload)
	return rawPacket(0x30|qos<<1, body.Bytes())
}

// rawSubscribe builds a SUBSCRIBE for one filter at QoS 1.
func rawSubscribe(version byte, id uint16, filter []byte) []byte {
	var body bytes.Buffer
	body.Write([]byte{byte(id >> 8), byte(id)})
	if version == 5 {
		body.WriteByte(0)
	}
	body.Write([]byte{byte(len(filter) >> 8), byte(len(filter))})
	body.Write(filter)
	body.WriteByte(1)
	return rawPacket(0x82, body.Bytes())
}

func rawPacket(first byte, body []byte) []byte {
	out := []byte{first}
	n := len(body)
	for {
		b := byte(n % 128)
		n /= 128
		if n > 0 {
			b |= 0x80
		}
		out = append(out, b)
		if n == 0 {
			break
		}
	}
	return append(out, body...)
}

func subscribeV5(c *mqtttest.V5, subs []paho5.SubscribeOptions) (*paho5.Suback, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: subs})
}

// countReasons counts granted (QoS 0..2) and refused (== refusal) codes.
func countReasons(codes []byte, refusal byte) (granted, refused int) {
	for _, c := range codes {
		switch {
		case c <= 2:
			granted++
		case c == refusal:
			refused++
		}
	}
	return granted, refused
}

// dialWS opens a WebSocket to the MQTT listener with an Origin header ("" for none).
func dialWS(url, origin string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	d := websocket.Dialer{Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	return d.Dial(url, h)
}

// wsMQTT logs uid in over an open WebSocket and publishes one request at
// QoS 1, failing unless CONNACK and PUBACK say yes.
func wsMQTT(t *testing.T, ws *websocket.Conn, uid, request string) {
	t.Helper()
	var connect bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: uid,
		UsernameFlag: true, Username: []byte(uid), PasswordFlag: true, Password: []byte(mqtttest.Token(t, uid)),
	}}
	if err := pk.ConnectEncode(&connect); err != nil {
		t.Fatal(err)
	}
	_ = ws.SetReadDeadline(time.Now().Add(wait))
	for _, step := range []struct {
		send []byte
		want byte
	}{
		{connect.Bytes(), packets.Connack},
		{rawPublish(4, []byte("im/sendmsg"), 1, 9, []byte(request)), packets.Puback},
	} {
		if err := ws.WriteMessage(websocket.BinaryMessage, step.send); err != nil {
			t.Fatal(err)
		}
		_, r, err := ws.NextReader()
		if err != nil {
			t.Fatal(err)
		}
		typ, body, err := mqtttest.ReadRawPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		if typ != step.want || (typ == packets.Connack && body[1] != 0) {
			t.Fatalf("got packet type %d % x, want type %d", typ, body, step.want)
		}
	}
}
