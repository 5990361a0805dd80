// Command chat is an inboxmq chat client with paho.golang's autopaho (MQTT 5,
// reconnects by itself), shown in docs/clients.md and run by
// examples/examples_test.go against a real broker.
//
//	chat listen UID [COUNT]    print inbox messages; exit after COUNT (default: never)
//	chat send UID PEER TEXT    send TEXT to PEER, print the new message's id
//
// Environment: INBOXMQ_URL (default mqtt://127.0.0.1:1883) and
// INBOXMQ_JWT_SECRET, which this demo uses to mint its own token: a real app
// gets its token from its back-end and never holds the secret.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/eclipse/paho.golang/autopaho"
	"github.com/eclipse/paho.golang/paho"
	"github.com/golang-jwt/jwt/v5"
)

// MintToken is the back-end's job: an HS256 JWT whose sub is the uid.
func MintToken(secret, uid, nickname string, ttl time.Duration) (string, error) {
	now := time.Now()
	claims := jwt.MapClaims{"sub": uid, "iat": now.Unix(), "exp": now.Add(ttl).Unix(), "nickname": nickname}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString([]byte(secret))
}

// envelope is what the broker publishes on inbox/{uid} (docs/protocol.md
// section 4); uid is a number or a string.
type envelope struct {
	Method string          `json:"_method_"`
	MsgID  string          `json:"msgid"`
	UID    json.RawMessage `json:"uid"`
	Ct     string          `json:"ct"`
	Code   string          `json:"code"`
	Detail string          `json:"detail"`
	Reason string          `json:"reason"`
}

func main() {
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
	}
	os.Exit(code)
}

func run(args []string) (int, error) {
	if len(args) < 2 || (args[0] != "listen" && args[0] != "send") || (args[0] == "send" && len(args) < 4) {
		return 2, errors.New("usage: chat listen UID [COUNT] | send UID PEER TEXT")
	}
	mode, uid := args[0], args[1]
	secret := os.Getenv("INBOXMQ_JWT_SECRET")
	if secret == "" {
		return 2, errors.New("INBOXMQ_JWT_SECRET is not set")
	}
	wanted := -1
	if mode == "listen" && len(args) > 2 {
		n, err := strconv.Atoi(args[2])
		if err != nil {
			return 2, fmt.Errorf("COUNT: %w", err)
		}
		wanted = n
	}
	server, err := url.Parse(envOr("INBOXMQ_URL", "mqtt://127.0.0.1:1883"))
	if err != nil {
		return 2, fmt.Errorf("INBOXMQ_URL: %w", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	done := make(chan int, 1) // the exit code, once the program has its answer
	finish := func(code int) {
		select {
		case done <- code:
		default:
		}
	}
	var started, loggedOut atomic.Bool
	clientID := uid + "/go"
	if mode == "send" {
		clientID = uid + "/go-send"
	}

	cfg := autopaho.ClientConfig{
		ServerUrls:            []*url.URL{server},
		KeepAlive:             60,
		SessionExpiryInterval: 7 * 24 * 3600, // a persistent session: what arrives while offline waits
		ConnectRetryDelay:     2 * time.Second,
		ConnectUsername:       uid,
		// Each (re)connection gets a fresh token: a connection never
		// outlives its token's exp.
		ConnectPacketBuilder: func(c *paho.Connect, _ *url.URL) (*paho.Connect, error) {
			token, err := MintToken(secret, uid, "go-"+uid, time.Hour)
			if err != nil {
				return nil, fmt.Errorf("mint token: %w", err)
			}
			c.Password, c.PasswordFlag = []byte(token), true
			// autopaho's own properties leave Request Problem Information
			// at 0, and then MQTT 5 forbids user properties on a PUBACK:
			// ask for them, or the msgid never comes with the ack.
			c.Properties.RequestProblemInfo = true
			return c, nil
		},
		OnConnectionUp: func(cm *autopaho.ConnectionManager, connack *paho.Connack) {
			first := started.CompareAndSwap(false, true)
			if !first && connack.SessionPresent {
				return // a reconnect: the persistent session kept the subscription
			}
			go func() { // OnConnectionUp must not block
				sub := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "inbox/" + uid, QoS: 1}}}
				if _, err := cm.Subscribe(ctx, sub); err != nil {
					fmt.Fprintln(os.Stderr, "subscribe:", err)
					finish(1)
					return
				}
				if !first {
					return // the session had expired: subscribed again, nothing else to do
				}
				if mode == "listen" {
					fmt.Println("ready")
					return
				}
				send(ctx, cm, args[2], args[3], finish)
			}()
		},
		// After a Logout, reconnecting would log the newer device out in turn.
		OnConnectionDown: func() bool { return !loggedOut.Load() },
		OnConnectError:   func(err error) { fmt.Fprintln(os.Stderr, "connect:", err) },
		ClientConfig: paho.ClientConfig{
			ClientID: clientID,
			OnPublishReceived: []func(paho.PublishReceived) (bool, error){
				func(pr paho.PublishReceived) (bool, error) {
					var env envelope
					if err := json.Unmarshal(pr.Packet.Payload, &env); err != nil {
						fmt.Fprintln(os.Stderr, "bad envelope:", err)
						return true, nil
					}
					switch env.Method {
					case "SendMsg":
						if mode == "listen" {
							fmt.Printf("message %s from %s: %s\n", env.MsgID, uidString(env.UID), env.Ct)
							if wanted--; wanted == 0 {
								finish(0)
							}
						}
					case "Error": // a refused request: do not resend it unchanged
						fmt.Printf("error %s: %s\n", env.Code, env.Detail)
						if mode == "send" {
							finish(1)
						}
					case "Logout": // logged in elsewhere, or kicked: stop, do not reconnect
						loggedOut.Store(true)
						fmt.Printf("logout: %s\n", env.Reason)
						finish(0)
					}
					return true, nil
				},
			},
		},
	}
	cm, err := autopaho.NewConnection(ctx, cfg)
	if err != nil {
		return 1, fmt.Errorf("connect: %w", err)
	}
	var code int
	select {
	case code = <-done:
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = cm.Disconnect(shut) // the connection may already be gone (Logout)
	return code, nil
}

// send publishes one im/sendmsg request at QoS 1 and prints the id the
// PUBACK carries (MQTT 5 user property msgid).
func send(ctx context.Context, cm *autopaho.ConnectionManager, peer, text string, finish func(int)) {
	cid := make([]byte, 8)
	_, _ = rand.Read(cid) // crypto/rand.Read never fails
	payload, err := json.Marshal(map[string]string{"uid": peer, "msg": text, "cid": hex.EncodeToString(cid)})
	if err != nil {
		fmt.Fprintln(os.Stderr, "encode:", err)
		finish(1)
		return
	}
	resp, err := cm.Publish(ctx, &paho.Publish{Topic: "im/sendmsg", QoS: 1, Payload: payload})
	if err != nil {
		// Refused (reason code >= 0x80): the Error envelope says why.
		fmt.Println("refused:", err)
		return
	}
	fmt.Printf("sent %s\n", resp.Properties.User.Get("msgid"))
	finish(0)
}

func uidString(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw) // a number
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
