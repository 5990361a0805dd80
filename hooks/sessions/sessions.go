package sessions

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
)

// Store is what the hook keeps sessions and retained messages in.
type Store interface {
	inbox.Sessions
	inbox.Retained
}

// Options configure the hook.
type Options struct {
	Server *mqtt.Server // required
	Store  Store        // required
	NodeID int
	// Shared is true when other nodes write the same store: a connecting
	// client's session is then looked up there, since it may have been
	// held on another node.
	Shared bool
	// MaxExpiry caps how long a session outlives its connection; 3.1.1
	// sessions, which cannot say, get exactly this.
	MaxExpiry time.Duration
	// SweepInterval is how often expired sessions are removed from the
	// store (default 10s). mochi ends the sessions it holds on time; the
	// sweep catches the rest.
	SweepInterval time.Duration
	// Timeout bounds each store call (default 5s).
	Timeout time.Duration
	// MaxPerAccount caps the persistent sessions one account keeps on
	// this node (0: no cap): past it the account's sessions disconnected
	// longest ago end first. Anonymous clients share no account: uncapped.
	MaxPerAccount int
	Log           *slog.Logger
}

// Hook keeps persistent sessions and retained messages in the store.
type Hook struct {
	mqtt.HookBase
	opts Options

	// held maps each live connection with a persistent session to the
	// owner token it holds the session under. A connection leaves it when
	// it ends or is taken over.
	held sync.Map // *mqtt.Client -> string
	// owners maps a session id to the owner token this node last wrote
	// or loaded for it: it tells a stale disconnected copy from a current one.
	owners sync.Map // session id -> string

	tokenBase string
	tokenSeq  atomic.Uint64

	// accounts tracks each account's sessions on this node for
	// MaxPerAccount. A slice per account, not a map: an account holds one
	// session or a few (up to MaxPerAccount), and a map per account cost
	// every idle connection about 250 bytes more.
	mu       sync.Mutex
	accounts map[string][]accountSession // guarded by mu

	stop chan struct{}
	done sync.WaitGroup
}

// ID names the hook.
func (h *Hook) ID() string { return "inboxmq-sessions" }

// Provides lists the events the hook handles.
func (h *Hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnSessionEstablish,
		mqtt.OnSessionEstablished,
		mqtt.OnSubscribed,
		mqtt.OnUnsubscribed,
		mqtt.OnDisconnect,
		mqtt.OnClientExpired,
		mqtt.OnRetainMessage,
		mqtt.OnRetainedExpired:
		return true
	}
	return false
}

// Init takes *Options. It does not touch the store: Restore does.
func (h *Hook) Init(config any) error {
	opts, ok := config.(*Options)
	if !ok || opts == nil {
		return fmt.Errorf("sessions: Init needs *sessions.Options, got %T", config)
	}
	if opts.Server == nil || opts.Store == nil {
		return errors.New("sessions: Options.Server and Options.Store are required")
	}
	if opts.MaxExpiry <= 0 {
		return errors.New("sessions: Options.MaxExpiry must be positive")
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = 10 * time.Second
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	h.opts = *opts
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return fmt.Errorf("sessions: owner tokens: %w", err)
	}
	h.tokenBase = fmt.Sprintf("%d-%s-", opts.NodeID, hex.EncodeToString(r[:]))
	h.stop = make(chan struct{})
	h.accounts = make(map[string][]accountSession)
	return nil
}

// accountSession is one session of an account on this node: its id, and
// when its connection ended (Unix ms; 0 while connected).
type accountSession struct {
	id    string
	ended int64
}

// track records that account holds session id, connected (ended 0) or
// disconnected since ended (Unix ms).
func (h *Hook) track(account, id string, ended int64) {
	if account == "" {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.accounts[account]
	for i := range list {
		if list[i].id == id {
			list[i].ended = ended
			return
		}
	}
	h.accounts[account] = append(list, accountSession{id: id, ended: ended})
}

// untrack forgets session id of account.
func (h *Hook) untrack(account, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.accounts[account]
	i := slices.IndexFunc(list, func(s accountSession) bool { return s.id == id })
	switch {
	case i < 0:
	case len(list) == 1:
		delete(h.accounts, account)
	default:
		h.accounts[account] = slices.Delete(list, i, i+1)
	}
}

// overCap returns the sessions of account to end so that it keeps at most
// MaxPerAccount: those disconnected longest ago, never a connected one.
func (h *Hook) overCap(account string) []string {
	if h.opts.MaxPerAccount <= 0 || account == "" {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	list := h.accounts[account]
	n := len(list) - h.opts.MaxPerAccount
	if n <= 0 {
		return nil
	}
	var ended []accountSession
	for _, s := range list {
		if s.ended > 0 {
			ended = append(ended, s)
		}
	}
	slices.SortFunc(ended, func(a, b accountSession) int { return cmp.Compare(a.ended, b.ended) })
	ids := make([]string, 0, min(n, len(ended)))
	for _, s := range ended[:min(n, len(ended))] {
		ids = append(ids, s.id)
	}
	return ids
}

// endSessions ends sessions of account over the cap: removed from the
// store (if this node's owner still holds them) and from the server.
func (h *Hook) endSessions(account string, ids []string) {
	ctx, cancel := h.ctx()
	defer cancel()
	for _, id := range ids {
		if _, err := h.opts.Store.DeleteSession(ctx, id, h.ownerOf(id)); err != nil {
			h.opts.Log.Error("session over the account's cap not removed", "client", id, "error", err)
			continue
		}
		if cl, ok := h.opts.Server.Clients.Get(id); ok && cl.Closed() {
			h.forget(cl)
		}
		h.untrack(account, id)
	}
	h.opts.Log.Info("persistent sessions ended: over the account's cap", "account", account, "ended", len(ids),
		"cap", h.opts.MaxPerAccount)
}

// Restore puts the stored sessions and retained messages back into the
// server, and starts the expiry sweep. Call it once, before the server
// serves. On a shared store only the sessions last held on this node are
// restored; the others are found when their clients connect.
func (h *Hook) Restore(ctx context.Context) (sessions, retained int, err error) {
	all, err := h.opts.Store.Sessions(ctx)
	if err != nil {
		return 0, 0, fmt.Errorf("sessions: restore: %w", err)
	}
	now := time.Now()
	for _, s := range all {
		if h.opts.Shared && s.Node != h.opts.NodeID {
			continue
		}
		if s.Expires == 0 {
			// Held by a connection of this node when it stopped without
			// saying so (a crash): the connection ended now.
			s.Expires = now.Add(s.ExpiryInterval).UnixMilli()
			if _, err := h.opts.Store.UpdateSession(ctx, s); err != nil {
				return sessions, 0, fmt.Errorf("sessions: restore %q: %w", s.ID, err)
			}
		}
		if s.Expired(now) {
			continue // the sweep removes it
		}
		h.restore(s, now)
		sessions++
	}
	if retained, err = h.restoreRetained(ctx, now); err != nil {
		return sessions, retained, err
	}
	h.done.Add(1)
	go h.sweepLoop()
	return sessions, retained, nil
}

// Close stops the expiry sweep.
func (h *Hook) Close() {
	select {
	case <-h.stop:
	default:
		close(h.stop)
	}
	h.done.Wait()
}

// restore adds s to the server as a disconnected client holding its
// subscriptions, as mochi does with stored clients, so that the next
// connection with its id takes it over (session present).
func (h *Hook) restore(s inbox.Session, now time.Time) {
	srv := h.opts.Server
	cl := srv.NewClient(nil, s.Listener, s.ID, false)
	cl.Properties.Username = []byte(s.Username)
	cl.Properties.ProtocolVersion = s.ProtocolVersion
	cl.Properties.Clean = false
	if s.ProtocolVersion == 5 {
		// mochi ends a disconnected MQTT 5 session this long after Stop:
		// what is left of its interval.
		left := time.Duration(s.Expires-now.UnixMilli()) * time.Millisecond
		cl.Properties.Props.SessionExpiryInterval = uint32(min(math.MaxUint32, max(1, (left+time.Second-1)/time.Second)))
		cl.Properties.Props.SessionExpiryIntervalFlag = true
	}
	cl.Stop(packets.ErrServerShuttingDown)
	for _, sub := range s.Subscriptions {
		ps := packets.Subscription{
			Filter: sub.Filter, Qos: sub.QoS, NoLocal: sub.NoLocal,
			RetainAsPublished: sub.RetainAsPublished, RetainHandling: sub.RetainHandling, Identifier: sub.Identifier,
		}
		if srv.Topics.Subscribe(s.ID, ps) {
			atomic.AddInt64(&srv.Info.Subscriptions, 1)
		}
		cl.State.Subscriptions.Add(sub.Filter, ps)
	}
	srv.Clients.Add(cl)
	h.owners.Store(s.ID, s.Owner)
	h.track(s.Username, s.ID, max(1, s.Expires-s.ExpiryInterval.Milliseconds()))
}

// forget removes a disconnected client from the server: its session ended
// or another node holds a newer one.
func (h *Hook) forget(cl *mqtt.Client) {
	srv := h.opts.Server
	srv.UnsubscribeClient(cl)
	cl.ClearInflights()
	if cur, ok := srv.Clients.Get(cl.ID); ok && cur == cl {
		srv.Clients.Delete(cl.ID)
	}
	h.owners.CompareAndDelete(cl.ID, h.ownerOf(cl.ID))
	h.untrack(string(cl.Properties.Username), cl.ID)
}

func (h *Hook) ownerOf(id string) string {
	v, _ := h.owners.Load(id)
	s, _ := v.(string)
	return s
}

func (h *Hook) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), h.opts.Timeout)
}

// persistent reports whether cl's session outlives its connection.
func persistent(cl *mqtt.Client) bool { return !access.SessionExpires(cl) }

// expiry is how long cl's session outlives its connection.
func (h *Hook) expiry(cl *mqtt.Client) time.Duration {
	if cl.Properties.ProtocolVersion == 5 {
		return min(h.opts.MaxExpiry, time.Duration(cl.Properties.Props.SessionExpiryInterval)*time.Second)
	}
	return h.opts.MaxExpiry
}

// session is cl's session as stored, held by owner.
func (h *Hook) session(cl *mqtt.Client, owner string) inbox.Session {
	s := inbox.Session{
		ID: cl.ID, Owner: owner, Username: string(cl.Properties.Username), Listener: cl.Net.Listener,
		ProtocolVersion: cl.Properties.ProtocolVersion, ExpiryInterval: h.expiry(cl), Node: h.opts.NodeID,
	}
	for _, sub := range cl.State.Subscriptions.GetAll() {
		s.Subscriptions = append(s.Subscriptions, inbox.Subscription{
			Filter: sub.Filter, QoS: sub.Qos, NoLocal: sub.NoLocal, RetainAsPublished: sub.RetainAsPublished,
			RetainHandling: sub.RetainHandling, Identifier: sub.Identifier,
		})
	}
	return s
}

// OnSessionEstablish runs before mochi takes over a session with the same
// id. The old connection, if any, stops writing the session: the new one
// holds it from now on. On a shared store the session may have been held
// on another node since this node last saw it: the stored one replaces a
// local copy that is stale, and is restored when there is none.
func (h *Hook) OnSessionEstablish(cl *mqtt.Client, pk packets.Packet) {
	srv := h.opts.Server
	old, hasOld := srv.Clients.Get(cl.ID)
	if hasOld && old != cl {
		h.held.Delete(old)
	}
	if !h.opts.Shared || pk.Connect.Clean {
		return // a clean start discards any session; without sharing, every session is here
	}
	if hasOld && old != cl && !old.Closed() {
		return // live here: mochi takes it over
	}
	ctx, cancel := h.ctx()
	defer cancel()
	stored, ok, err := h.opts.Store.Session(ctx, cl.ID)
	if err != nil {
		// Without the store the session cannot be known: the client gets
		// what this node holds (maybe nothing, session present 0) and its
		// messages stay in the log for a later connection.
		h.opts.Log.Error("session not looked up: store error", "client", cl.ID, "error", err)
		return
	}
	now := time.Now()
	current := ok && !stored.Expired(now)
	if hasOld && old != cl {
		if current && h.ownerOf(cl.ID) == stored.Owner {
			return // the local copy is the stored one
		}
		h.forget(old)
	}
	if current {
		h.restore(stored, now)
	}
}

// OnSessionEstablished stores the session of a persistent connection as
// held by it, and removes a stored one that ends with this connection.
func (h *Hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	ctx, cancel := h.ctx()
	defer cancel()
	account := string(cl.Properties.Username)
	if !persistent(cl) {
		h.owners.Delete(cl.ID)
		h.untrack(account, cl.ID)
		if _, err := h.opts.Store.DeleteSession(ctx, cl.ID, ""); err != nil {
			h.opts.Log.Error("ended session not removed from the store", "client", cl.ID, "error", err)
		}
		return
	}
	owner := h.tokenBase + fmt.Sprint(h.tokenSeq.Add(1))
	h.held.Store(cl, owner)
	h.owners.Store(cl.ID, owner)
	if err := h.opts.Store.PutSession(ctx, h.session(cl, owner)); err != nil {
		h.opts.Log.Error("session not stored: it will not survive a restart", "client", cl.ID, "error", err)
	}
	h.track(account, cl.ID, 0)
	if over := h.overCap(account); len(over) > 0 {
		h.endSessions(account, over)
	}
}

// OnSubscribed stores the session's subscriptions before mochi sends the SUBACK.
func (h *Hook) OnSubscribed(cl *mqtt.Client, pk packets.Packet, reasonCodes []byte) {
	h.update(cl, "subscriptions")
}

// OnUnsubscribed stores the session's subscriptions before mochi sends the UNSUBACK.
func (h *Hook) OnUnsubscribed(cl *mqtt.Client, pk packets.Packet) {
	h.update(cl, "subscriptions")
}

// update writes cl's session while cl holds it.
func (h *Hook) update(cl *mqtt.Client, what string) {
	v, ok := h.held.Load(cl)
	if !ok {
		return
	}
	ctx, cancel := h.ctx()
	defer cancel()
	if _, err := h.opts.Store.UpdateSession(ctx, h.session(cl, v.(string))); err != nil {
		h.opts.Log.Error("session "+what+" not stored", "client", cl.ID, "error", err)
	}
}

// OnDisconnect starts the expiry of the session cl held, or removes it
// when it ends with the connection (MQTT 5 expiry set to 0 at DISCONNECT).
func (h *Hook) OnDisconnect(cl *mqtt.Client, err error, expire bool) {
	v, ok := h.held.LoadAndDelete(cl)
	if !ok {
		return // not persistent, taken over, or a client being restored
	}
	owner := v.(string)
	ctx, cancel := h.ctx()
	defer cancel()
	if expire || !persistent(cl) {
		h.owners.CompareAndDelete(cl.ID, owner)
		h.untrack(string(cl.Properties.Username), cl.ID)
		if _, err := h.opts.Store.DeleteSession(ctx, cl.ID, owner); err != nil {
			h.opts.Log.Error("ended session not removed from the store", "client", cl.ID, "error", err)
		}
		return
	}
	h.track(string(cl.Properties.Username), cl.ID, time.Now().UnixMilli())
	s := h.session(cl, owner)
	s.Expires = time.Now().Add(s.ExpiryInterval).UnixMilli()
	if _, err := h.opts.Store.UpdateSession(ctx, s); err != nil {
		h.opts.Log.Error("session expiry not stored", "client", cl.ID, "error", err)
	}
}

// OnClientExpired removes a session mochi ended from the store, unless
// another connection (maybe on another node) holds it by now.
func (h *Hook) OnClientExpired(cl *mqtt.Client) {
	h.untrack(string(cl.Properties.Username), cl.ID)
	owner := h.ownerOf(cl.ID)
	if owner == "" {
		return
	}
	h.owners.CompareAndDelete(cl.ID, owner)
	ctx, cancel := h.ctx()
	defer cancel()
	if _, err := h.opts.Store.DeleteSession(ctx, cl.ID, owner); err != nil {
		h.opts.Log.Error("expired session not removed from the store", "client", cl.ID, "error", err)
	}
}

// sweepLoop removes expired sessions from the store and from the server.
func (h *Hook) sweepLoop() {
	defer h.done.Done()
	t := time.NewTicker(h.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			h.sweep(now)
		}
	}
}

func (h *Hook) sweep(now time.Time) {
	ctx, cancel := h.ctx()
	defer cancel()
	ids, err := h.opts.Store.ExpireSessions(ctx, now)
	if err != nil {
		h.opts.Log.Error("session expiry sweep failed", "error", err)
	}
	for _, id := range ids {
		if cl, ok := h.opts.Server.Clients.Get(id); ok && cl.Closed() {
			h.forget(cl)
		}
	}
	if len(ids) > 0 {
		h.opts.Log.Info("persistent sessions expired", "count", len(ids))
	}
}
