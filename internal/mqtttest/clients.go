package mqtttest

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }

// Payload turns a value into a publish payload: []byte and string as is,
// anything else as JSON.
func Payload(v any) []byte {
	switch p := v.(type) {
	case []byte:
		return p
	case string:
		return []byte(p)
	}
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// V3Options shape a 3.1.1 connection.
type V3Options struct {
	ClientID  string // default: the uid
	Clean     bool   // clean session (default false: persistent)
	Subscribe bool   // subscribe to inbox/{uid} at QoS 1 after connecting
	Will      *Will
	TLS       *tls.Config // connect over TLS (ssl://) with this config
}

// Will is a last will.
type Will struct {
	Topic   string
	Payload string
}

// V3 is a paho MQTT 3.1.1 client whose received messages land in Inbox.
type V3 struct {
	paho.Client
	UID   string
	Inbox *Inbox
	// SessionPresent is the CONNACK's session present flag.
	SessionPresent bool
}

// ConnectV3 connects a paho 3.1.1 client as uid with password.
func ConnectV3(addr, uid, password string, o V3Options) (*V3, error) {
	if o.TLS != nil {
		return connectV3("ssl://"+addr, uid, password, o)
	}
	return connectV3("tcp://"+addr, uid, password, o)
}

func connectV3(url, uid, password string, o V3Options) (*V3, error) {
	if o.ClientID == "" {
		o.ClientID = uid
	}
	c := &V3{UID: uid, Inbox: NewInbox()}
	opts := paho.NewClientOptions().
		AddBroker(url).
		SetClientID(o.ClientID).
		SetUsername(uid).
		SetPassword(password).
		SetCleanSession(o.Clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(5 * time.Second).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			c.Inbox.Add(m.Topic(), m.Payload(), m.Duplicate())
		})
	if o.Will != nil {
		opts.SetWill(o.Will.Topic, o.Will.Payload, 1, false)
	}
	if o.TLS != nil {
		opts.SetTLSConfig(o.TLS)
	}
	c.Client = paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	c.SessionPresent = tok.(*paho.ConnectToken).SessionPresent()
	if o.Subscribe {
		if err := c.Sub("inbox/"+uid, 1); err != nil {
			c.Disconnect(0)
			return nil, err
		}
	}
	return c, nil
}

// MustV3 is ConnectV3 that fails the test on error and disconnects at the end.
func MustV3(tb testing.TB, addr, uid, password string, o V3Options) *V3 {
	tb.Helper()
	c, err := ConnectV3(addr, uid, password, o)
	if err != nil {
		tb.Fatalf("connect %s: %v", uid, err)
	}
	tb.Cleanup(func() { c.Disconnect(0) })
	return c
}

// Sub subscribes and returns the granted QoS as an error when refused.
func (c *V3) Sub(filter string, qos byte) error {
	tok := c.Subscribe(filter, qos, nil)
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("subscribe timed out")
	}
	if err := tok.Error(); err != nil {
		return err
	}
	// paho keys the result by the filter without a $share/{group}/ prefix.
	for _, granted := range tok.(*paho.SubscribeToken).Result() {
		if granted == 0x80 {
			return fmt.Errorf("subscribe %s refused (0x80)", filter)
		}
	}
	return nil
}

// Pub publishes at QoS 1 and waits for the PUBACK.
func (c *V3) Pub(topic string, payload any) error {
	return c.PubQoS(topic, 1, false, payload)
}

// PubQoS publishes with the given QoS and retain flag and waits for the ack.
func (c *V3) PubQoS(topic string, qos byte, retain bool, payload any) error {
	tok := c.Publish(topic, qos, retain, Payload(payload))
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("publish timed out")
	}
	return tok.Error()
}

// MustPub fails the test when a publish is not acknowledged.
func (c *V3) MustPub(tb testing.TB, topic string, payload any) {
	tb.Helper()
	if err := c.Pub(topic, payload); err != nil {
		tb.Fatalf("%s publish %s: %v", c.UID, topic, err)
	}
}

// V5Options shape an MQTT 5 connection.
type V5Options struct {
	ClientID       string // default: the uid
	SessionExpiry  uint32 // 0: non-persistent
	ReceiveMaximum uint16 // 0: not sent
	// MaximumPacketSize is the largest packet the client accepts; 0: not sent.
	MaximumPacketSize uint32
	Subscribe         bool
}

// V5 is a paho.golang MQTT 5 client whose received messages land in Inbox.
type V5 struct {
	*paho5.Client
	UID     string
	Inbox   *Inbox
	Connack *paho5.Connack
	// Disconnects receives the server's DISCONNECT packets.
	Disconnects chan *paho5.Disconnect
}

// ConnectV5 connects a paho.golang MQTT 5 client.
func ConnectV5(addr, uid, password string, o V5Options) (*V5, error) {
	if o.ClientID == "" {
		o.ClientID = uid
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c := &V5{UID: uid, Inbox: NewInbox(), Disconnects: make(chan *paho5.Disconnect, 4)}
	c.Client = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				c.Inbox.Add(pr.Packet.Topic, pr.Packet.Payload, pr.Packet.Duplicate())
				return true, nil
			},
		},
		OnServerDisconnect: func(d *paho5.Disconnect) {
			select {
			case c.Disconnects <- d:
			default:
			}
		},
		OnClientError: func(error) {},
	})
	props := &paho5.ConnectProperties{}
	if o.SessionExpiry > 0 {
		props.SessionExpiryInterval = &o.SessionExpiry
	}
	if o.ReceiveMaximum > 0 {
		props.ReceiveMaximum = &o.ReceiveMaximum
	}
	if o.MaximumPacketSize > 0 {
		props.MaximumPacketSize = &o.MaximumPacketSize
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ca, err := c.Connect(ctx, &paho5.Connect{
		ClientID:     o.ClientID,
		Username:     uid,
		UsernameFlag: uid != "",
		Password:     []byte(password),
		PasswordFlag: password != "",
		CleanStart:   o.SessionExpiry == 0,
		KeepAlive:    30,
		Properties:   props,
	})
	c.Connack = ca
	if err != nil {
		conn.Close()
		return c, err
	}
	if o.Subscribe {
		if code, err := c.Sub("inbox/"+uid, 1); err != nil || code >= 0x80 {
			c.Close()
			return nil, fmt.Errorf("subscribe inbox: code %#x, %v", code, err)
		}
	}
	return c, nil
}

// MustV5 is ConnectV5 that fails the test on error and disconnects at the end.
func MustV5(tb testing.TB, addr, uid, password string, o V5Options) *V5 {
	tb.Helper()
	c, err := ConnectV5(addr, uid, password, o)
	if err != nil {
		tb.Fatalf("connect v5 %s: %v", uid, err)
	}
	tb.Cleanup(c.Close)
	return c
}

// Sub subscribes to one filter and returns its SUBACK reason code.
func (c *V5) Sub(filter string, qos byte) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	sa, err := c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: filter, QoS: qos}}})
	if sa != nil && len(sa.Reasons) == 1 {
		return sa.Reasons[0], nil
	}
	if err != nil {
		return 0, err
	}
	return 0, errors.New("no reason code in SUBACK")
}

// Pub publishes at QoS 1 and returns the PUBACK reason code.
func (c *V5) Pub(topic string, payload any) (byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Publish(ctx, &paho5.Publish{Topic: topic, QoS: 1, Payload: Payload(payload)})
	if resp != nil {
		return resp.ReasonCode, nil
	}
	return 0, err
}

// Close disconnects politely.
func (c *V5) Close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = c.Disconnect(&paho5.Disconnect{ReasonCode: 0})
	select {
	case <-c.Done():
	case <-ctx.Done():
	}
}

// MosquittoPub runs mosquitto_pub (the operator's tool) against addr.
func MosquittoPub(addr, user, password, topic, message string, extra ...string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	args := append([]string{"-h", host, "-p", port, "-u", user, "-P", password, "-q", "1", "-t", topic, "-m", message}, extra...)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "mosquitto_pub", args...).CombinedOutput()
	return string(out), err
}

// ConnectV3WS connects a paho 3.1.1 client over WebSocket (url ws://host:port/path).
func ConnectV3WS(url, uid, password string, o V3Options) (*V3, error) {
	return connectV3(url, uid, password, o)
}
