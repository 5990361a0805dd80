package broker

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/web"
)

// devTokenTTL is the lifetime of the tokens the dev login mints.
const devTokenTTL = 24 * time.Hour

// webHandler serves the reference web client at / on the HTTP listener.
// It is built in Start after the WebSocket listener is open, so the page is
// told the port actually bound (the config may ask for port 0).
func (b *Broker) webHandler() http.Handler {
	ws := b.cfg.Listeners.WebSocket
	opts := web.Options{
		WebSocketPath: ws.Path,
		WebSocketPort: b.webSocketPort(),
		WebSocketTLS:  ws.TLS.Enabled(),
		WebSocketURL:  b.cfg.Web.MQTTURL,
		Log:           b.log,
	}
	if b.cfg.Web.DevLogin {
		b.log.Warn("web.dev_login is on: anyone who can reach the web page can log in as anyone (development only)")
		opts.DevToken = b.devToken
	}
	return web.Handler(opts)
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
