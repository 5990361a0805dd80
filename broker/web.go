package broker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/web"
)

// devTokenTTL is the lifetime of the tokens the dev login mints.
const devTokenTTL = 24 * time.Hour

// webHandler serves the reference web client at / on the HTTP listener
// as c says (404 everywhere when it is off). It is built in Start after
// the WebSocket listener is open, so the page is told the port actually
// bound (the config may ask for port 0), and again by a reload of web.*.
func (b *Broker) webHandler(c WebConfig) http.Handler {
	if !c.Enabled {
		return http.NotFoundHandler()
	}
	ws := b.cfg.Listeners.WebSocket
	opts := web.Options{
		WebSocketPath: ws.Path,
		WebSocketPort: b.webSocketPort(),
		WebSocketTLS:  ws.TLS.Enabled(),
		WebSocketURL:  c.MQTTURL,
		Log:           b.log,
	}
	if c.DevLogin {
		opts.DevToken = b.devToken
	}
	return web.Handler(opts)
}

// swapHandler serves with the handler set last: a reload replaces the web
// page's handler while requests are served, each by the old one or the
// new one.
type swapHandler struct {
	h atomic.Pointer[http.Handler]
}

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	http.NotFound(w, r)
}

// webSocketPort is the WebSocket listener's port: the bound one when it
// listens, else the configured one; 0 when there is no listener.
func (b *Broker) webSocketPort() int {
	addr := b.cfg.Listeners.WebSocket.Address
	if b.wsLn != nil {
		addr = b.wsLn.Addr().String()
	}
	if addr == "" {
		return 0
	}
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return 0
	}
	return n
}

// devToken mints a user token for the web page's dev login, with the
// current secret (a reload applies). Static account names are refused as
// they are as token subjects.
func (b *Broker) devToken(uid string) (string, error) {
	creds := b.access.Credentials()
	if !acl.ValidUID(uid) || (creds.Accounts != nil && creds.Accounts.Has(uid)) {
		return "", web.ErrBadUID
	}
	if creds.Tokens == nil {
		return "", errors.New("no auth.jwt_secret to sign tokens with")
	}
	tok, err := creds.Tokens.Mint(auth.Claims{UID: uid, Nickname: uid, TTL: devTokenTTL})
	if err != nil {
		return "", fmt.Errorf("dev login: %w", err)
	}
	return tok, nil
}
