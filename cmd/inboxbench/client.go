package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	paho "github.com/eclipse/paho.mqtt.golang"
)

// opTimeout bounds every connect, subscribe and publish.
const opTimeout = 30 * time.Second

// sessionExpiry keeps MQTT 5 sessions as long as a 3.1.1 clean=false one
// is kept for the length of a run.
const sessionExpiry = 3600

// Client is one MQTT connection of the harness, on paho (3.1.1) or
// paho.golang (MQTT 5).
type Client interface {
	// Publish sends at QoS 1 and waits for the PUBACK; a refusal is an error.
	Publish(topic string, payload []byte) error
	// Subscribe subscribes at QoS 1.
	Subscribe(topic string) error
	// Close disconnects politely.
	Close()
}

// Dial describes one connection.
type Dial struct {
	Addr, ClientID, User, Password string
	V5                             bool
	Persistent                     bool // 3.1.1 clean=false, MQTT 5 session expiry > 0
	// OnMessage gets every PUBLISH received, on the client's reader goroutine.
	OnMessage func(topic string, payload []byte)
	// Lost counts connections that ended without Close.
	Lost *atomic.Int64
}

// Connect opens the connection.
func Connect(d Dial) (Client, error) {
	if d.V5 {
		return connectV5(d)
	}
	return connectV3(d)
}

type v3Client struct{ c paho.Client }

func connectV3(d Dial) (Client, error) {
	opts := paho.NewClientOptions().
		AddBroker("tcp://" + d.Addr).
		SetClientID(d.ClientID).
		SetUsername(d.User).
		SetPassword(d.Password).
		SetCleanSession(!d.Persistent).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetOrderMatters(true). // handlers in arrival order, so order checks are valid
		SetKeepAlive(60 * time.Second).
		SetConnectTimeout(opTimeout).
		SetWriteTimeout(opTimeout).
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) {
			if d.OnMessage != nil {
				d.OnMessage(m.Topic(), m.Payload())
			}
		}).
		SetConnectionLostHandler(func(paho.Client, error) {
			if d.Lost != nil {
				d.Lost.Add(1)
			}
		})
	c := paho.NewClient(opts)
	tok := c.Connect()
	if !tok.WaitTimeout(opTimeout) {
		return nil, fmt.Errorf("connect %s (3.1.1): timed out", d.ClientID)
	}
	if err := tok.Error(); err != nil {
		return nil, fmt.Errorf("connect %s (3.1.1): %w", d.ClientID, err)
	}
	return &v3Client{c: c}, nil
}

func (c *v3Client) Publish(topic string, payload []byte) error {
	tok := c.c.Publish(topic, 1, false, payload)
	if !tok.WaitTimeout(opTimeout) {
		return fmt.Errorf("publish %s: no PUBACK within %s", topic, opTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	return nil
}

func (c *v3Client) Subscribe(topic string) error {
	tok := c.c.Subscribe(topic, 1, nil)
	if !tok.WaitTimeout(opTimeout) {
		return fmt.Errorf("subscribe %s: timed out", topic)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	for _, granted := range tok.(*paho.SubscribeToken).Result() {
		if granted == 0x80 {
			return fmt.Errorf("subscribe %s: refused", topic)
		}
	}
	return nil
}

func (c *v3Client) Close() { c.c.Disconnect(10) }

type v5Client struct {
	c      *paho5.Client
	closed atomic.Bool
}

func connectV5(d Dial) (Client, error) {
	conn, err := net.DialTimeout("tcp", d.Addr, opTimeout)
	if err != nil {
		return nil, fmt.Errorf("connect %s (MQTT 5): %w", d.ClientID, err)
	}
	c := &v5Client{}
	var lostOnce sync.Once
	lost := func() {
		if d.Lost != nil && !c.closed.Load() {
			lostOnce.Do(func() { d.Lost.Add(1) })
		}
	}
	c.c = paho5.NewClient(paho5.ClientConfig{
		Conn: conn,
		OnPublishReceived: []func(paho5.PublishReceived) (bool, error){
			func(pr paho5.PublishReceived) (bool, error) {
				if d.OnMessage != nil {
					d.OnMessage(pr.Packet.Topic, pr.Packet.Payload)
				}
				return true, nil
			},
		},
		OnServerDisconnect: func(*paho5.Disconnect) { lost() },
		OnClientError:      func(error) { lost() },
	})
	cp := &paho5.Connect{
		ClientID:     d.ClientID,
		Username:     d.User,
		UsernameFlag: d.User != "",
		Password:     []byte(d.Password),
		PasswordFlag: d.Password != "",
		CleanStart:   !d.Persistent,
		KeepAlive:    60,
	}
	if d.Persistent {
		expiry := uint32(sessionExpiry)
		cp.Properties = &paho5.ConnectProperties{SessionExpiryInterval: &expiry}
	}
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	ca, err := c.c.Connect(ctx, cp)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("connect %s (MQTT 5): %w", d.ClientID, err)
	}
	if ca.ReasonCode >= 0x80 {
		conn.Close()
		return nil, fmt.Errorf("connect %s (MQTT 5): reason code %#x", d.ClientID, ca.ReasonCode)
	}
	return c, nil
}

func (c *v5Client) Publish(topic string, payload []byte) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	resp, err := c.c.Publish(ctx, &paho5.Publish{Topic: topic, QoS: 1, Payload: payload})
	if err != nil {
		return fmt.Errorf("publish %s: %w", topic, err)
	}
	if resp != nil && resp.ReasonCode >= 0x80 {
		return fmt.Errorf("publish %s: PUBACK reason code %#x", topic, resp.ReasonCode)
	}
	return nil
}

func (c *v5Client) Subscribe(topic string) error {
	ctx, cancel := context.WithTimeout(context.Background(), opTimeout)
	defer cancel()
	sa, err := c.c.Subscribe(ctx, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: topic, QoS: 1}}})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", topic, err)
	}
	if len(sa.Reasons) != 1 || sa.Reasons[0] >= 0x80 {
		return fmt.Errorf("subscribe %s: reasons %v", topic, sa.Reasons)
	}
	return nil
}

func (c *v5Client) Close() {
	c.closed.Store(true)
	if err := c.c.Disconnect(&paho5.Disconnect{ReasonCode: 0}); err != nil {
		return // the connection is already gone
	}
	select {
	case <-c.c.Done():
	case <-time.After(2 * time.Second):
	}
}

// isV5 spreads a fraction f of n clients evenly over MQTT 5.
func isV5(i int, f float64) bool {
	return int(float64(i+1)*f) > int(float64(i)*f)
}

// parallel runs f(0..n-1) on at most width goroutines and returns the
// first error.
func parallel(n, width int, f func(i int) error) error {
	var (
		next  atomic.Int64
		wg    sync.WaitGroup
		errMu sync.Mutex
		first error
	)
	for w := 0; w < min(width, n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					errMu.Lock()
					if first == nil {
						first = err
					}
					errMu.Unlock()
					next.Store(int64(n)) // stop the others
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}
