package access

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/keyrate"
	"github.com/inboxmq/inboxmq/internal/logsafe"
)

// IDSeparator joins the account name and the client's own id into the
// internal session id. It cannot occur in a username (acl.ValidUID).
const IDSeparator = "|"

// takeoverWait bounds how long a new connection waits for mochi to finish
// cleaning up an old, non-persistent connection with the same id.
const takeoverWait = 2 * time.Second

// Identity is an authenticated connection.
//
// UID is "" for anonymous clients; Role decides what the connection may
// do; Expires (zero for static accounts and anonymous clients) is when
// the token expires: the connection must not outlive its credentials.
type Identity struct {
	auth.Identity        // who logged in, as for HTTP
	ClientID      string // the client id as the client sent it (or as mochi assigned it)
}

// Subject is the identity as the ACL sees it.
func (id *Identity) Subject() acl.Subject {
	return acl.Subject{Username: id.UID, ClientID: id.ClientID, Role: id.Role}
}

// Options configure the hook.
type Options struct {
	Server         *mqtt.Server   // needed to finish session takeovers safely
	Tokens         *auth.Tokens   // nil: no token logins (see SetCredentials)
	Accounts       *auth.Accounts // nil: no static accounts (see SetCredentials)
	Policy         *acl.Policy    // required
	AllowAnonymous bool           // let clients without credentials in (anonymous ACL rules only)
	Log            *slog.Logger
	// OnAuthFailure, if set, is told of every refused login with a short reason.
	OnAuthFailure func(reason string)
	// OnACLDenied, if set, is told of every refused subscription or delivery.
	OnACLDenied func()
	// MaxSubscriptions is the most subscriptions one client may hold (0: no limit).
	MaxSubscriptions int
	// MaxClientID is the longest client id accepted, in bytes
	// (DefaultMaxClientID when 0); a longer one is refused at CONNECT.
	MaxClientID int
	// MaximumKeepalive caps the keep alive a client asks for, in seconds
	// (0: no cap). An MQTT 5 client above it (or asking for none) gets the
	// cap as Server Keep Alive in its CONNACK; 3.1.1 has no way to tell a
	// client, so one above it is refused with CONNACK 2, as Mosquitto does.
	MaximumKeepalive uint16
	// BeforeTakeover, if set, is called with an old connection that a new
	// login with the same account and client id is about to end, while the
	// old one can still be written to (the delivery hook says Logout).
	BeforeTakeover func(old *mqtt.Client)
}

// Hook authenticates and authorizes clients.
type Hook struct {
	mqtt.HookBase
	opts       Options
	identities sync.Map // *mqtt.Client -> *Identity

	// Reloadable without dropping connections (SIGHUP).
	creds   atomic.Pointer[Credentials]
	maxSubs atomic.Int64
	// anonymous is Options.AllowAnonymous, then SetAllowAnonymous's.
	anonymous atomic.Bool

	// refusals bounds refusal log lines per remote address (logins) and
	// per connection (reads): see package logsafe.
	refusals *keyrate.Limiter
	swept    atomic.Int64 // UnixNano of the last sweepIdentities
}

// Refusal lines per key per second after a burst; the rest are counted.
const (
	refusalLinesPerSecond = 1
	refusalLineBurst      = 10
)

// DefaultMaxClientID is Options.MaxClientID when 0: client ids are logged
// and keyed on, and nothing a real client library generates is longer.
const DefaultMaxClientID = 128

// remoteIP is the address part of a remote "host:port".
func remoteIP(remote string) string {
	if host, _, err := net.SplitHostPort(remote); err == nil {
		return host
	}
	return remote
}

// Credentials are what logins are checked against. Either may be nil.
type Credentials = auth.Credentials

// SetCredentials replaces the token secret and static accounts for new
// logins; connected clients stay connected.
func (h *Hook) SetCredentials(c Credentials) { h.creds.Store(&c) }

// Credentials returns the current credentials.
func (h *Hook) Credentials() Credentials { return *h.creds.Load() }

// SetMaxSubscriptions changes the per-client subscription limit (0: none).
func (h *Hook) SetMaxSubscriptions(n int) { h.maxSubs.Store(int64(n)) }

// SetAllowAnonymous lets clients without credentials in, or stops letting
// new ones in; those connected stay connected.
func (h *Hook) SetAllowAnonymous(allow bool) { h.anonymous.Store(allow) }

// ID names the hook.
func (h *Hook) ID() string { return "inboxmq-access" }

// Provides lists the events the hook handles.
func (h *Hook) Provides(b byte) bool {
	// A switch, not bytes.Contains: mochi asks every hook this for every
	// event of every packet, and that showed in fan-out profiles.
	switch b {
	case mqtt.OnConnect,
		mqtt.OnConnectAuthenticate,
		mqtt.OnACLCheck,
		mqtt.OnSessionEstablish,
		mqtt.OnSubscribe,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired:
		return true
	}
	return false
}

// Init takes *Options.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok || opts == nil {
		return fmt.Errorf("access: Init needs *access.Options, got %T", config)
	}
	if opts.Server == nil || opts.Policy == nil {
		return errors.New("access: Options.Server and Options.Policy are required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxClientID <= 0 {
		opts.MaxClientID = DefaultMaxClientID
	}
	h.opts = *opts
	h.refusals = keyrate.NewLimiter(refusalLinesPerSecond, refusalLineBurst)
	h.SetCredentials(Credentials{Tokens: opts.Tokens, Accounts: opts.Accounts})
	h.SetMaxSubscriptions(opts.MaxSubscriptions)
	h.SetAllowAnonymous(opts.AllowAnonymous)
	return nil
}

// Identity returns the identity of an authenticated client.
func (h *Hook) Identity(cl *mqtt.Client) (*Identity, bool) {
	v, ok := h.identities.Load(cl)
	if !ok {
		return nil, false
	}
	return v.(*Identity), true
}

// errClientIDTooLong ends a CONNECT whose client id is over the limit.
var (
	errClientIDTooLong  = errors.New("client id too long")
	errKeepaliveTooLong = errors.New("keep alive above the maximum")
)

// OnConnect applies MaximumKeepalive and refuses a client id over
// MaxClientID before any credential is checked: CONNACK 0x85 (MQTT 5) or
// 0x02 (3.1.1, identifier rejected).
func (h *Hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	if max := h.opts.MaximumKeepalive; max > 0 && (cl.State.Keepalive == 0 || cl.State.Keepalive > max) {
		if cl.Properties.ProtocolVersion < 5 {
			return h.refuseConnect(cl, pk, "keepalive_too_long", errKeepaliveTooLong,
				"keepalive", cl.State.Keepalive, "maximum", max)
		}
		// mochi sends Server Keep Alive in the CONNACK and keeps the
		// connection's deadline at 1.5 times it.
		cl.State.Keepalive, cl.State.ServerKeepalive = max, true
	}
	if len(pk.Connect.ClientIdentifier) <= h.opts.MaxClientID {
		return nil
	}
	return h.refuseConnect(cl, pk, "client_id_too_long", errClientIDTooLong, "limit", h.opts.MaxClientID)
}

// refuseConnect refuses a CONNECT before authentication: a log line
// (rate-limited per IP), the failure metric, and CONNACK 0x85 (3.1.1: 2,
// identifier rejected).
func (h *Hook) refuseConnect(cl *mqtt.Client, pk packets.Packet, reason string, err error, attrs ...any) error {
	if ok, held := h.refusals.Allow(remoteIP(cl.Net.Remote)); ok {
		h.opts.Log.Warn("login refused", append([]any{"client", logsafe.Clip(pk.Connect.ClientIdentifier), "remote", cl.Net.Remote,
			"reason", reason, "suppressed_before", held}, attrs...)...)
	}
	if h.opts.OnAuthFailure != nil {
		h.opts.OnAuthFailure(reason)
	}
	_ = h.opts.Server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
	return err
}

// OnConnectAuthenticate decides whether a client may connect.
func (h *Hook) OnConnectAuthenticate(cl *mqtt.Client, pk packets.Packet) bool {
	id, reason := h.authenticate(cl, pk)
	if id == nil {
		if ok, held := h.refusals.Allow(remoteIP(cl.Net.Remote)); ok {
			h.opts.Log.Warn("login refused", "username", logsafe.Clip(string(pk.Connect.Username)),
				"client", logsafe.Clip(pk.Connect.ClientIdentifier), "remote", cl.Net.Remote, "reason", reason,
				"suppressed_before", held)
		}
		if h.opts.OnAuthFailure != nil {
			h.opts.OnAuthFailure(reason)
		}
		return false
	}
	if will := cl.Properties.Will.TopicName; cl.Properties.Will.Flag == 1 &&
		(!h.opts.Policy.CanPublish(id.Subject(), will) || requestTopic(will)) {
		if ok, held := h.refusals.Allow(remoteIP(cl.Net.Remote)); ok {
			h.opts.Log.Warn("login refused", "uid", id.UID, "client", logsafe.Clip(id.ClientID), "remote", cl.Net.Remote,
				"reason", "will topic not allowed", "topic", logsafe.Clip(cl.Properties.Will.TopicName), "suppressed_before", held)
		}
		if h.opts.OnAuthFailure != nil {
			h.opts.OnAuthFailure("will_denied")
		}
		// A precise reason beats mochi's generic "bad username or password",
		// which it sends after ours and the client never reads.
		code := packets.ErrNotAuthorized
		if cl.Properties.ProtocolVersion < 5 {
			code = packets.Err3NotAuthorized // mochi does not map 0x87 for 3.1.1
		}
		_ = h.opts.Server.SendConnack(cl, code, false, nil)
		return false
	}
	// Namespacing the session id by account means a client id chosen by one
	// account can never take over, read or disturb another account's session.
	cl.ID = id.UID + IDSeparator + cl.ID
	h.sweepIdentities()
	h.identities.Store(cl, id)
	return true
}

func (h *Hook) authenticate(cl *mqtt.Client, pk packets.Packet) (*Identity, string) {
	username := string(pk.Connect.Username)
	password := string(pk.Connect.Password)
	creds := h.Credentials()
	base := Identity{ClientID: cl.ID}
	switch {
	case username == "" && len(password) == 0:
		if !h.anonymous.Load() {
			return nil, "anonymous_disabled"
		}
		base.Role = acl.RoleAnonymous
		return &base, ""
	case !acl.ValidUID(username):
		return nil, "invalid_username"
	case creds.Accounts != nil && creds.Accounts.Has(username):
		ident, ok := creds.Accounts.Authenticate(username, password)
		if !ok {
			return nil, "bad_password"
		}
		base.Identity = ident
		return &base, ""
	case creds.Tokens == nil:
		equalCost(creds.Accounts, username, password)
		return nil, "tokens_disabled"
	}
	ident, err := creds.Tokens.Verify(username, password)
	if err != nil {
		equalCost(creds.Accounts, username, password)
		return nil, tokenReason(err)
	}
	base.Identity = ident
	return &base, ""
}

// equalCost spends on a refused login of a name that is not a static
// account the bcrypt comparison a wrong static-account password costs
// (against the accounts' dummy hash), so the time a refusal takes does not
// tell which account names exist (54.6 ms against 0.6 ms before).
func equalCost(accounts *auth.Accounts, username, password string) {
	if accounts != nil {
		accounts.Authenticate(username, password) // an unknown name: always false
	}
}

// tokenReason turns a token error into a short, loggable reason that never
// contains the token itself.
func tokenReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrTokenExpired):
		return "token_expired"
	case errors.Is(err, auth.ErrTokenNotYetValid):
		return "token_not_yet_valid"
	case errors.Is(err, auth.ErrTokenSignature):
		return "token_signature"
	case errors.Is(err, auth.ErrTokenAlgorithm):
		return "token_algorithm"
	case errors.Is(err, auth.ErrTokenSubject):
		return "token_subject"
	case errors.Is(err, auth.ErrTokenClaims):
		return "token_claims"
	default:
		return "token_malformed"
	}
}

// OnSessionEstablish runs after authentication and before mochi takes over
// an existing session with the same id. mochi v2.7.9 loses the new
// connection when the old one was non-persistent and its cleanup runs after
// the takeover: the old client's cleanup calls Clients.Delete(id), which
// then removes the new client, so messages to it are skipped without a log
// line (measured: 42 of 400 reconnects lost). So end the old one first and
// wait until mochi has forgotten it.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	s := h.opts.Server
	old, ok := s.Clients.Get(cl.ID)
	if !ok || old == cl {
		return
	}
	if h.opts.BeforeTakeover != nil {
		h.opts.BeforeTakeover(old)
	}
	// The session is the new connection's from now on, and so are the
	// read checks of what is queued for it.
	h.identities.Delete(old)
	// mochi's takeover writes DISCONNECT to the old connection, which a
	// 3.1.1 client takes as a protocol error: close a 3.1.1 socket first.
	if old.Properties.ProtocolVersion < 5 {
		old.Stop(packets.ErrSessionTakenOver)
	}
	if !SessionExpires(old) {
		return // mochi takes a persistent session over safely
	}
	EndConnection(s, old, packets.ErrSessionTakenOver)
	deadline := time.Now().Add(takeoverWait)
	for time.Now().Before(deadline) {
		if cur, ok := s.Clients.Get(cl.ID); !ok || cur != old {
			return
		}
		time.Sleep(time.Millisecond)
	}
	h.opts.Log.Warn("old connection did not finish closing", "client", cl.ID)
}

// requestTopic reports the im/ request topics. A will on one is refused:
// a will is published by the broker, not sent by the client, so it could
// never be carried out as the client's request.
func requestTopic(topic string) bool { return topic == "im" || strings.HasPrefix(topic, "im/") }

// EndConnection ends cl's connection: an MQTT 5 client gets DISCONNECT
// with code; MQTT 3.1.1 has no server-to-client DISCONNECT (paho reports a
// protocol error, mosquitto_sub too), so a 3.1.1 socket is just closed.
func EndConnection(s *mqtt.Server, cl *mqtt.Client, code packets.Code) {
	if cl.Properties.ProtocolVersion == 5 {
		_ = s.DisconnectClient(cl, code)
		return
	}
	cl.Stop(code)
}

// SessionExpires reports whether mochi drops the client's session when its
// connection ends: MQTT 5 session expiry 0, or 3.1.1 clean session.
func SessionExpires(cl *mqtt.Client) bool {
	if cl.Properties.ProtocolVersion == 5 {
		return cl.Properties.Props.SessionExpiryInterval == 0
	}
	return cl.Properties.Clean
}

// OnACLCheck decides reads: SUBSCRIBE filters and each delivery. Writes are
// allowed here and decided in the delivery hook's OnPublish (see package doc).
func (h *Hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return true
	}
	id, ok := h.Identity(cl)
	if ok && h.opts.Policy.CanRead(id.Subject(), topic) {
		return true
	}
	if h.opts.OnACLDenied != nil {
		h.opts.OnACLDenied()
	}
	if ok && !strings.HasPrefix(topic, "$SYS") && topic != tooManyFilter {
		if ok, held := h.refusals.Allow(cl.ID); ok {
			h.opts.Log.Info("read denied", "uid", id.UID, "client", id.ClientID, "filter", logsafe.Clip(topic),
				"suppressed_before", held)
		}
	}
	return false
}

// reservedTarget reports whether filter, or the filter a shared
// subscription "$share/{group}/{filter}" names, lies in a reserved
// namespace: "$share/g/public/news" is an opened topic, granted up to QoS 2.
func reservedTarget(filter string) bool {
	if rest, ok := strings.CutPrefix(filter, "$share/"); ok {
		if _, inner, ok := strings.Cut(rest, "/"); ok {
			return acl.Reserved(inner)
		}
	}
	return acl.Reserved(filter)
}

// tooManyFilter replaces a filter beyond the subscription limit: it is a
// valid filter that the policy refuses, so mochi answers it with 0x87/0x80
// while the other filters of the SUBSCRIBE go through.
const tooManyFilter = "$inboxmq-refused/too-many-subscriptions"

// OnSubscribe grants at most QoS 1 on the broker's own topics (inbox
// messages are acknowledged per message, never by the QoS 2 handshake) and
// refuses filters beyond the subscription limit.
func (h *Hook) OnSubscribe(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	held, limit, refused := cl.State.Subscriptions.Len(), int(h.maxSubs.Load()), 0
	id, known := h.Identity(cl)
	var counted map[string]bool // new filters of this SUBSCRIBE given a slot
	for i := range pk.Filters {
		f := &pk.Filters[i]
		if reservedTarget(f.Filter) && f.Qos > 1 {
			f.Qos = 1
		}
		if limit <= 0 {
			continue
		}
		if _, renew := cl.State.Subscriptions.Get(f.Filter); renew || counted[f.Filter] {
			continue
		}
		// A filter that mochi or the policy refuses anyway takes no slot,
		// and keeps its own reason code (0x8F for an invalid filter).
		if !known || !mqtt.IsValidFilter(f.Filter, false) || !h.opts.Policy.CanRead(id.Subject(), f.Filter) {
			continue
		}
		if held >= limit {
			f.Filter = tooManyFilter
			refused++
			continue
		}
		if counted == nil {
			counted = make(map[string]bool)
		}
		counted[f.Filter] = true
		held++
	}
	if refused > 0 { // one line per SUBSCRIBE, however many filters
		h.opts.Log.Info("subscriptions refused: limit reached", "client", cl.ID, "refused", refused, "limit", limit)
	}
	return pk
}

// OnClientExpired removes an expired session's subscriptions from the
// topic index: mochi v2.7.9 forgets the session but leaves them there, so
// every browser page load with a fresh client id would leak its filters
// (and a later session reusing the id would get messages for them).
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.opts.Server.UnsubscribeClient(cl)
	h.identities.Delete(cl)
}

// sweepIdentities forgets the identities of closed connections whose
// client mochi no longer holds: those that ended before their session was
// established (the CONNACK could not be written; mochi calls no
// OnDisconnect for them) and those whose persistent session a newer
// connection took over. At most once a minute.
func (h *Hook) sweepIdentities() {
	now := time.Now().UnixNano()
	last := h.swept.Load()
	if now-last < int64(time.Minute) || !h.swept.CompareAndSwap(last, now) {
		return
	}
	h.identities.Range(func(k, _ any) bool {
		cl := k.(*mqtt.Client)
		if held, ok := h.opts.Server.Clients.Get(cl.ID); cl.Closed() && (!ok || held != cl) {
			h.identities.Delete(k)
		}
		return true
	})
}

// OnDisconnect forgets the client's identity when its session ends with
// the connection. A persistent session keeps it while it waits: mochi
// checks every message queued for the offline session (QoS 1 and 2 on
// opened topics) against it, and without it would queue nothing. It goes
// with the session (OnClientExpired) or when a newer connection takes the
// session over (sweepIdentities).
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	if expire {
		h.identities.Delete(cl)
	}
}
