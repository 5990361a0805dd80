//go:build soak

package main

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// maxSessionsPerAccount is the shipped limits.max_sessions_per_account.
const maxSessionsPerAccount = 10

// attackers run beside the soak's normal users: what issue 19's probe did
// to the broker, in loops, each bounded in rate.
type attackers struct {
	t                                             *testing.T
	mqtt, http                                    string
	floodSubs, hugeLogins, sessions, guesses      atomic.Int64
	floodRefused, hugeRefused, guessRefused, idle atomic.Int64
}

func newAttackers(t *testing.T, mqttAddr, httpAddr string) *attackers {
	return &attackers{t: t, mqtt: mqttAddr, http: httpAddr}
}

func (a *attackers) all() []func(stop <-chan struct{}) {
	return []func(stop <-chan struct{}){a.subscribeFlood, a.hugeLogin, a.sessionPiler, a.basicAuthGuesser, a.httpIdler}
}

func (a *attackers) String() string {
	return fmt.Sprintf("%d flood SUBSCRIBEs (%d refused), %d 65,000-byte logins (%d refused), %d persistent sessions piled, %d Basic-auth guesses (%d refused or limited), %d idle HTTP connections opened",
		a.floodSubs.Load(), a.floodRefused.Load(), a.hugeLogins.Load(), a.hugeRefused.Load(), a.sessions.Load(),
		a.guesses.Load(), a.guessRefused.Load(), a.idle.Load())
}

// check says whether the protections answered every attack.
func (a *attackers) check() error {
	switch {
	case a.floodSubs.Load() == 0 || a.floodRefused.Load() != a.floodSubs.Load():
		return fmt.Errorf("subscribe flood: %d of %d refused", a.floodRefused.Load(), a.floodSubs.Load())
	case a.hugeLogins.Load() == 0 || a.hugeRefused.Load() != a.hugeLogins.Load():
		return fmt.Errorf("65,000-byte logins: %d of %d refused", a.hugeRefused.Load(), a.hugeLogins.Load())
	case a.guesses.Load() == 0 || a.guessRefused.Load() != a.guesses.Load():
		return fmt.Errorf("Basic-auth guesses: %d of %d refused", a.guessRefused.Load(), a.guesses.Load())
	}
	return nil
}

func every(d time.Duration, stop <-chan struct{}, f func()) {
	tick := time.NewTicker(d)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
			f()
		}
	}
}

// subscribeFlood: a logged-in user sends SUBSCRIBEs of 4 refused filters
// of 60,000 control bytes each.
func (a *attackers) subscribeFlood(stop <-chan struct{}) {
	tok := mqtttest.Token(a.t, "68001")
	huge := "inbox/" + strings.Repeat("\x01", 60000)
	every(200*time.Millisecond, stop, func() {
		conn, err := mqtttest.RawConnect(a.mqtt, packets.ConnectParams{ClientIdentifier: "flood", Clean: true,
			Username: []byte("68001"), Password: []byte(tok)})
		if err != nil {
			return
		}
		defer conn.Close()
		pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1}
		for j := range 4 {
			pk.Filters = append(pk.Filters, packets.Subscription{Filter: huge + string(rune('a'+j)), Qos: 1})
		}
		var buf bytes.Buffer
		if pk.SubscribeEncode(&buf) != nil {
			return
		}
		a.floodSubs.Add(1)
		if _, err := conn.Write(buf.Bytes()); err != nil {
			return
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if typ, body, err := mqtttest.ReadRawPacket(conn); err == nil && typ == packets.Suback && len(body) == 6 &&
			body[2] == 0x80 && body[5] == 0x80 {
			a.floodRefused.Add(1)
		}
	})
}

// hugeLogin: without credentials, 65,000-byte usernames and client ids.
func (a *attackers) hugeLogin(stop <-chan struct{}) {
	long := strings.Repeat("u", 65000)
	every(200*time.Millisecond, stop, func() {
		a.hugeLogins.Add(1)
		conn, err := mqtttest.RawConnect(a.mqtt, packets.ConnectParams{ClientIdentifier: long, Clean: true,
			Username: []byte(long), Password: []byte("x")})
		if err != nil {
			a.hugeRefused.Add(1)
			return
		}
		conn.Close()
	})
}

// sessionPiler: one account, a new client id each time, clean session 0.
func (a *attackers) sessionPiler(stop <-chan struct{}) {
	tok := mqtttest.Token(a.t, "68002")
	n := 0
	every(100*time.Millisecond, stop, func() {
		n++
		c, err := mqtttest.ConnectV3(a.mqtt, "68002", tok, mqtttest.V3Options{ClientID: fmt.Sprintf("pile-%d", n), Subscribe: true})
		if err != nil {
			return
		}
		a.sessions.Add(1)
		c.Disconnect(0)
	})
}

// basicAuthGuesser: Basic-auth guesses at the public API (static accounts
// log in there too; the admin endpoints are not on the public listener).
func (a *attackers) basicAuthGuesser(stop <-chan struct{}) {
	client := &http.Client{Timeout: 10 * time.Second}
	every(50*time.Millisecond, stop, func() {
		req, _ := http.NewRequest("GET", "http://"+a.http+"/api/v1/unread", nil)
		req.SetBasicAuth("admin", "guess")
		a.guesses.Add(1)
		resp, err := client.Do(req)
		if err != nil {
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 401 || resp.StatusCode == 429 || resp.StatusCode == 503 {
			a.guessRefused.Add(1)
		}
	})
}

// httpIdler keeps opening idle connections to the HTTP listener.
func (a *attackers) httpIdler(stop <-chan struct{}) {
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	every(time.Second, stop, func() {
		for range 20 {
			c, err := net.DialTimeout("tcp", a.http, time.Second)
			if err != nil {
				return
			}
			a.idle.Add(1)
			conns = append(conns, c)
		}
		// Keep the newest 200 (most are closed by the broker by now).
		if len(conns) > 200 {
			for _, c := range conns[:len(conns)-200] {
				c.Close()
			}
			conns = append(conns[:0], conns[len(conns)-200:]...)
		}
	})
}
