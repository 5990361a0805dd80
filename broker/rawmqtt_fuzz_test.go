package broker_test

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// FuzzRawMQTT sends arbitrary bytes to a live broker on a new TCP
// connection, in chunks whose sizes derive from the input (so packets
// arrive split at any byte), optionally after a valid CONNECT of user
// "fuzz". After each input a fresh client must still log in and get a
// message through the store: whatever a connection sends, the broker
// neither crashes nor stops serving others.
//
// Seeds: testdata/fuzz/FuzzRawMQTT (valid CONNECT+SUBSCRIBE+PUBLISH
// sequences, malformed and huge remaining lengths, invalid UTF-8 topics,
// QoS 3, packets out of place, ...). `make fuzz` runs it for FUZZTIME.
func FuzzRawMQTT(f *testing.F) {
	cfg := mqtttest.Config(f)
	cfg.Listeners.WebSocket.Address, cfg.Listeners.HTTP.Address = "", ""
	cfg.Limits.ConnectTimeout = 2 * time.Second
	fuzzToken := mqtttest.Token(f, "fuzz")
	probeToken := mqtttest.Token(f, "probe")

	// One broker per fuzzing process, started on the first input: the
	// coordinating process never runs inputs and starts none.
	var (
		once     sync.Once
		b        *broker.Broker
		startErr error
		probes   atomic.Int64
	)
	f.Cleanup(func() {
		if b != nil {
			_ = b.Close()
		}
	})
	f.Fuzz(func(t *testing.T, connect bool, data []byte) {
		once.Do(func() { b, startErr = startUnmanaged(cfg) })
		if startErr != nil {
			t.Fatal(startErr)
		}
		var stream []byte
		if connect {
			stream = connectPacket("fuzz", fuzzToken)
		}
		stream = append(stream, data...)
		sendChunked(t, b.MQTTAddr(), stream)
		if err := probe(b.MQTTAddr(), probeToken, probes.Add(1)); err != nil {
			t.Fatalf("broker stopped serving after input %q: %v", stream, err)
		}
	})
}

// startUnmanaged starts a broker that outlives the test that started it
// (it is closed by the fuzz target's cleanup).
func startUnmanaged(cfg broker.Config) (*broker.Broker, error) {
	log, err := broker.NewLogger(cfg.Log, os.Stderr)
	if err != nil {
		return nil, err
	}
	b, err := broker.New(cfg, log)
	if err != nil {
		return nil, err
	}
	if err := b.Start(); err != nil {
		return nil, err
	}
	return b, nil
}

// connectPacket is a 3.1.1 CONNECT for uid (clean session, client id = uid).
func connectPacket(uid, token string) []byte {
	var buf bytes.Buffer
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4, Connect: packets.ConnectParams{
		ProtocolName: []byte("MQTT"), Clean: true, Keepalive: 30, ClientIdentifier: uid,
		UsernameFlag: true, Username: []byte(uid), PasswordFlag: true, Password: []byte(token),
	}}
	if err := pk.ConnectEncode(&buf); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// sendChunked writes stream on a new connection in chunks of 1..64 bytes
// drawn from a generator seeded by the stream, reads whatever comes back
// for a moment, and closes.
func sendChunked(t *testing.T, addr string, stream []byte) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.Close()
	// Drain concurrently so the broker never blocks writing to us.
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 4096)
		_ = conn.SetReadDeadline(time.Now().Add(3 * time.Second))
		for {
			if _, err := conn.Read(buf); err != nil {
				return
			}
		}
	}()
	h := fnv.New64a()
	h.Write(stream)
	rng := rand.New(rand.NewPCG(h.Sum64(), uint64(len(stream))))
	maxChunk := 1 + rng.IntN(64)
	_ = conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
	for len(stream) > 0 {
		n := min(len(stream), 1+rng.IntN(maxChunk))
		if _, err := conn.Write(stream[:n]); err != nil {
			break // the broker closed the connection: a fine answer
		}
		stream = stream[n:]
	}
	// Give the broker a moment to act on the last bytes, then hang up.
	select {
	case <-drained:
	case <-time.After(20 * time.Millisecond):
	}
	conn.Close()
	<-drained
}

// probe logs in as user "probe", sends a message and waits for its own
// MsgSent copy: login, ACL, store and delivery all still work.
func probe(addr, token string, n int64) error {
	got := make(chan string, 16)
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + addr).
		SetClientID("probe").
		SetUsername("probe").
		SetPassword(token).
		SetCleanSession(true).
		SetAutoReconnect(false).
		SetConnectTimeout(10 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			select {
			case got <- string(m.Payload()):
			default:
			}
		})
	c := paho.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	if tok := c.Subscribe("inbox/probe", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("subscribe: %v", tok.Error())
	}
	cid := fmt.Sprintf("probe-%d", n)
	if tok := c.Publish("im/sendmsg", 1, false, `{"uid":"echo","msg":"ping","cid":"`+cid+`"}`); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return fmt.Errorf("publish: %v", tok.Error())
	}
	deadline := time.After(10 * time.Second)
	for {
		select {
		case p := <-got:
			if bytes.Contains([]byte(p), []byte(`"cid":"`+cid+`"`)) {
				return nil
			}
		case <-deadline:
			return errors.New("own message not delivered within 10s")
		}
	}
}
