package mqtttest

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// DialWS opens an MQTT-over-WebSocket connection to url (ws://host:port/path)
// from the local IP from ("" lets the system choose), sending prelude (a
// PROXY protocol header, say) before the HTTP upgrade and extra request
// headers (X-Forwarded-For, say) with it, and returns it as a net.Conn
// carrying MQTT bytes in binary messages, for RawConnectOn.
func DialWS(url, from string, prelude []byte, header http.Header) (net.Conn, error) {
	nd := &net.Dialer{Timeout: 5 * time.Second}
	if from != "" {
		nd.LocalAddr = &net.TCPAddr{IP: net.ParseIP(from)}
	}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := nd.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if _, err := c.Write(prelude); err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	}
	d := websocket.Dialer{NetDialContext: dial, Subprotocols: []string{"mqtt"}, HandshakeTimeout: 5 * time.Second}
	c, resp, err := d.Dial(url, header)
	if err != nil {
		if resp != nil {
			return nil, &WSRefused{Status: resp.StatusCode}
		}
		return nil, err
	}
	return &wsStream{Conn: c.UnderlyingConn(), ws: c}, nil
}

// WSRefused is a WebSocket upgrade the server answered with Status.
type WSRefused struct{ Status int }

func (e *WSRefused) Error() string { return "websocket upgrade refused: " + http.StatusText(e.Status) }

// WSOriginAccepted reports whether the broker's WebSocket listener at addr
// (host:port) upgrades a connection from a page of origin; any other
// failure ends the test.
func WSOriginAccepted(tb testing.TB, addr, origin string) bool {
	tb.Helper()
	c, err := DialWS("ws://"+addr+"/mqtt", "", nil, http.Header{"Origin": {origin}})
	var refused *WSRefused
	if errors.As(err, &refused) {
		return false
	}
	if err != nil {
		tb.Fatal(err)
	}
	c.Close()
	return true
}

// wsStream reads and writes a WebSocket's binary messages as one stream.
type wsStream struct {
	net.Conn
	ws *websocket.Conn
	r  io.Reader // the message being read, nil between messages
}

func (s *wsStream) Read(p []byte) (int, error) {
	for {
		if s.r == nil {
			op, r, err := s.ws.NextReader()
			if err != nil {
				return 0, err
			}
			if op != websocket.BinaryMessage {
				return 0, errors.New("mqtttest: a text message on an MQTT WebSocket")
			}
			s.r = r
		}
		n, err := s.r.Read(p)
		if errors.Is(err, io.EOF) {
			s.r = nil
			if n == 0 {
				continue
			}
			err = nil
		}
		return n, err
	}
}

func (s *wsStream) Write(p []byte) (int, error) {
	if err := s.ws.WriteMessage(websocket.BinaryMessage, p); err != nil {
		return 0, err
	}
	return len(p), nil
}
