package broker

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/cluster"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/hooks/delivery"
	"github.com/inboxmq/inboxmq/hooks/sessions"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/dirlock"
	"github.com/inboxmq/inboxmq/internal/version"
	"github.com/inboxmq/inboxmq/messaging"
)

// Broker is one inboxmq node.
type Broker struct {
	cfg Config // as started; what reloads changed is in live
	log *slog.Logger

	// live is the configuration running now: cfg with the keys reloads
	// applied (reload.go). Replaced whole, under reloadMu.
	live       atomic.Pointer[Config]
	reloadMu   sync.Mutex             // one reload at a time
	configFile atomic.Pointer[string] // what ReloadConfig reads
	level      *slog.LevelVar         // log.level, when the logger came from NewLogger
	web        swapHandler            // the web page at /, rebuilt by a reload of web.*
	ws         *wsListener            // nil without a WebSocket listener

	store    inbox.Store
	redis    redis.UniversalClient // nil with the embedded store
	redisReq redisRequests         // counts what this node asks of redis
	node     *cluster.Node         // nil with the embedded store
	emitter  liveEmitter           // the event outbox, replaced by a reload; none without a sink
	notices  *events.Listener      // nil without Redis or a notification channel
	server   *mqtt.Server
	access   *access.Hook
	service  *messaging.Service // the operations MQTT and HTTP share
	delivery *delivery.Hook
	sessions *sessions.Hook
	metrics  *metrics
	// walSync times the embedded store's WAL syncs from its opening on;
	// registered with the other metrics once they exist.
	walSync prometheus.Histogram

	mqttLn, wsLn, httpLn net.Listener
	limited              []*limitedListener // under mqttLn and wsLn, for Reload
	certs                certList           // of the TLS listeners, re-read on Reload and file changes
	dataLock             *dirlock.Lock      // held on data_dir with the embedded store
	httpSrv              *http.Server
	adminSrv             *http.Server
	adminLn              net.Listener
	// Parsed listeners.proxy_protocol.trusted and listeners.trusted_proxies.
	proxyTrusted, httpProxies netSet

	refusedConns atomic.Int64 // connections refused by the per-IP rate
	refusedHTTP  atomic.Int64 // HTTP connections and requests refused by the per-IP limits
	serving      atomic.Bool  // every listener is accepting

	stop      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// New builds a broker from cfg (already validated by LoadConfig/ParseConfig)
// and opens its store. Nothing listens until Start.
func New(cfg Config, log *slog.Logger) (_ *Broker, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.Default()
	}
	b := &Broker{cfg: cfg, log: log, stop: make(chan struct{})}
	b.live.Store(&cfg)
	if lh, ok := log.Handler().(leveledHandler); ok {
		b.level = lh.level
	}
	// One cleanup path: whatever New started before failing, Close stops
	// (it skips what was never set).
	defer func() {
		if err != nil {
			_ = b.Close()
		}
	}()

	policy, err := cfg.policy()
	if err != nil {
		return nil, fmt.Errorf("acl: %w", err)
	}
	creds, err := cfg.credentials()
	if err != nil {
		return nil, err
	}

	if err := b.openStore(inbox.Options{
		MaxPerInbox:    cfg.Inbox.MaxMessages,
		Retention:      cfg.Inbox.Retention,
		NodeID:         cfg.NodeID,
		DedupeWindow:   cfg.Inbox.DedupeWindow,
		DedupePerInbox: cfg.Inbox.DedupePerInbox,
		OnDrop: func(uid string, n int, reason string) {
			log.Warn("inbox messages dropped by retention", "uid", uid, "count", n, "reason", reason)
			if b.metrics != nil {
				b.metrics.drop(n, reason)
			}
		},
	}); err != nil {
		return nil, err
	}

	rt := applyRuntime(cfg.Runtime, os.Getenv) // process-wide, like GOMEMLIMIT and GOGC
	log.Info("go runtime memory settings", "memory_limit", rt.MemoryLimit, "memory_limit_from", rt.LimitFrom,
		"gogc", rt.GOGC, "gogc_from", rt.GOGCFrom)
	b.server = mqtt.New(&mqtt.Options{
		Capabilities:             cfg.capabilities(),
		ClientNetReadBufferSize:  int(cfg.MQTT.ClientNetReadBufferSize),
		ClientNetWriteBufferSize: int(cfg.MQTT.ClientNetWriteBufferSize),
		InlineClient:             true, // broadcasts are published by the broker itself
		Logger:                   mochiLogger(log, b.mochiLevel()),
		SysTopicResendInterval:   int64(cfg.MQTT.SysTopicInterval / time.Second),
		// Packet handling off each connection's read goroutine, whose stack
		// then stays a few KB for an idle connection (third_party/mochi-mqtt-server/PATCHES.md).
		ShallowClientStacks: true,
	})
	b.delivery = new(delivery.Hook)
	b.metrics = newMetrics(b.server, b.delivery.OnlineUsers, &b.refusedConns)
	// Everything below gets the measured store (storemetrics.go).
	b.store = b.metrics.observeStore(b.store, storeBackend(cfg.Store))
	if b.walSync != nil {
		b.metrics.reg.MustRegister(b.walSync)
	}
	if b.redis != nil {
		b.metrics.watchRedis(&b.redisReq, b.redis)
	}
	if err := b.startEvents(); err != nil {
		return nil, err
	}
	emitter := &b.emitter
	b.service, err = messaging.New(messaging.Options{
		Store:        b.store,
		Limits:       bridge.Limits{MaxContent: int(cfg.Inbox.MaxMessageBytes)},
		SingleLogin:  cfg.Inbox.SingleLogin,
		DeleteWindow: cfg.Inbox.DeleteWindow,
		EditWindow:   cfg.Inbox.EditWindow,
		MaxBlocks:    cfg.Limits.MaxBlocks,
		Emitter:      emitter,
		EmitMessages: cfg.Events.Messages,
		Push:         b.pushOptions(cfg.Push),
		Metrics:      b.metrics,
		Log:          log,
	})
	if err != nil {
		return nil, err
	}
	b.access = new(access.Hook)
	if err := b.server.AddHook(b.access, &access.Options{
		Server:           b.server,
		Tokens:           creds.Tokens,
		Accounts:         creds.Accounts,
		Policy:           policy,
		AllowAnonymous:   cfg.Auth.Anonymous,
		MaxSubscriptions: cfg.Limits.MaxSubscriptions,
		MaxClientID:      cfg.Limits.MaxClientID,
		MaximumKeepalive: uint16(cfg.MQTT.MaximumKeepalive / time.Second), // at most 65535 s (Validate)
		Log:              log,
		OnAuthFailure:    b.metrics.authFailed,
		OnACLDenied:      b.metrics.aclDeniedOnce,
		BeforeTakeover:   b.delivery.BeforeTakeover,
	}); err != nil {
		return nil, fmt.Errorf("access hook: %w", err)
	}
	if err := b.server.AddHook(b.delivery, &delivery.Options{
		Server:       b.server,
		Store:        b.store,
		Identities:   b.access,
		Policy:       policy,
		SingleLogin:  cfg.Inbox.SingleLogin,
		Window:       cfg.Inbox.DeliveryWindow,
		Limits:       bridge.Limits{MaxContent: int(cfg.Inbox.MaxMessageBytes)},
		MessageRate:  cfg.Limits.MessageRate,
		MessageBurst: cfg.Limits.MessageBurst,
		MessageWait:  cfg.Limits.MessageWait,
		Log:          log,
		Events:       b.metrics,
		Service:      b.service,
		Emitter:      emitter,
		TokenLeeway:  cfg.Auth.TokenLeeway,
		WriteTimeout: cfg.Limits.WriteTimeout,
		// One store call, or a few for a delete: redis.timeout bounds each.
		RequestTimeout: cfg.storeTimeout(),
	}); err != nil {
		return nil, fmt.Errorf("delivery hook: %w", err)
	}
	b.service.Attach(b.delivery)
	b.sessions = new(sessions.Hook)
	if err := b.server.AddHook(b.sessions, &sessions.Options{
		Server:        b.server,
		Store:         b.store,
		NodeID:        cfg.NodeID,
		Shared:        cfg.Store == "redis",
		MaxExpiry:     cfg.MQTT.MaximumSessionExpiryInterval,
		Timeout:       cfg.storeTimeout(),
		MaxPerAccount: cfg.Limits.MaxSessionsPerAccount,
		Log:           log,
	}); err != nil {
		return nil, fmt.Errorf("sessions hook: %w", err)
	}
	if b.redis != nil {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Redis.DialTimeout+cfg.Redis.Timeout)
		defer cancel()
		b.node, err = cluster.Join(ctx, cluster.Options{
			Client: b.redis, Prefix: cfg.Redis.Prefix, NodeID: cfg.NodeID, Local: b.delivery, Log: log,
			Online: b.delivery.Online,
		})
		if err != nil {
			return nil, err
		}
		b.delivery.SetRouter(b.node)
	}
	if b.redis != nil && cfg.Events.NotificationChannel != "" {
		ctx, cancel := context.WithTimeout(context.Background(), cfg.Redis.DialTimeout+cfg.Redis.Timeout)
		defer cancel()
		b.notices, err = events.ListenNotifications(ctx, events.NotificationOptions{
			Client: b.redis, Channel: cfg.Events.NotificationChannel, Handle: b.handleNotice,
			Log: log, OnMalformed: b.metrics.noticeMalformed,
		})
		if err != nil {
			return nil, fmt.Errorf("notification channel: %w", err)
		}
	}
	return b, nil
}

// mochiLogger keeps mochi's own logging to errors unless we debug: it logs
// every normal disconnect as a warning, and our hooks log what matters
// with the uid attached. level is log.level (nil: info), which a reload
// may change.
func mochiLogger(log *slog.Logger, level *slog.LevelVar) *slog.Logger {
	return slog.New(levelFilter{h: log.Handler(), level: level}).With("component", "mochi")
}

// mochiLevel is the level mochi's records are filtered by: log.level, as
// reloads set it, or as configured for a logger not made by NewLogger.
func (b *Broker) mochiLevel() *slog.LevelVar {
	if b.level != nil {
		return b.level
	}
	v := new(slog.LevelVar)
	if l, err := parseLevel(b.cfg.Log.Level); err == nil {
		v.Set(l)
	}
	return v
}

// levelFilter drops mochi records below error (debug when log.level is
// debug), and its "publish packet error" records: mochi logs every refusal
// our OnPublish returns, at error level with a whole packet dump, and the
// delivery hook has already logged it with the account and reason.
type levelFilter struct {
	h     slog.Handler
	level *slog.LevelVar // nil: info
}

func (f levelFilter) Enabled(ctx context.Context, l slog.Level) bool {
	min := slog.LevelError
	if f.level != nil && f.level.Level() <= slog.LevelDebug {
		min = slog.LevelDebug
	}
	return l >= min && f.h.Enabled(ctx, l)
}

func (f levelFilter) Handle(ctx context.Context, r slog.Record) error {
	if r.Message == "publish packet error" {
		return nil
	}
	return f.h.Handle(ctx, r)
}

func (f levelFilter) WithAttrs(a []slog.Attr) slog.Handler {
	return levelFilter{h: f.h.WithAttrs(a), level: f.level}
}
func (f levelFilter) WithGroup(name string) slog.Handler {
	return levelFilter{h: f.h.WithGroup(name), level: f.level}
}

// Start opens the listeners and starts serving.
func (b *Broker) Start() error {
	l := b.cfg.Listeners
	var err error
	if b.proxyTrusted, b.httpProxies, err = l.trustedNets(); err != nil {
		return b.startFailed(err)
	}
	if l.MQTT.Address != "" {
		if b.mqttLn, _, err = b.listenLimited(l.MQTT.Address, l.MQTT.TLS, nil); err != nil {
			return b.startFailed(fmt.Errorf("mqtt listener %s: %w", l.MQTT.Address, err))
		}
		// The size guard reads the MQTT stream, so it sits above TLS.
		guarded := guardListener{Listener: b.mqttLn, max: uint32(b.cfg.MQTT.MaximumPacketSize)}
		if err := b.server.AddListener(listeners.NewNet("mqtt", guarded)); err != nil {
			return b.startFailed(err)
		}
	}
	if l.WebSocket.Address != "" {
		var limited *limitedListener
		if b.wsLn, limited, err = b.listenLimited(l.WebSocket.Address, l.WebSocket.TLS, b.httpProxies); err != nil {
			return b.startFailed(fmt.Errorf("websocket listener %s: %w", l.WebSocket.Address, err))
		}
		ws := newWSListener("websocket", b.wsLn, l.WebSocket.Path, l.WebSocket.AllowedOrigins, b.cfg.Limits.ConnectTimeout, uint32(b.cfg.MQTT.MaximumPacketSize), b.log)
		ws.proxies, ws.allow = b.httpProxies, limited.allow
		b.ws = ws
		if err := b.server.AddListener(ws); err != nil {
			return b.startFailed(err)
		}
	}
	if err := b.startHTTP(); err != nil {
		return b.startFailed(err)
	}
	if err := b.startAdmin(); err != nil {
		return b.startFailed(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	restored, retained, err := b.sessions.Restore(ctx)
	cancel()
	if err != nil {
		return b.startFailed(err)
	}
	if restored > 0 || retained > 0 {
		b.log.Info("persistent sessions restored", "sessions", restored, "retained_messages", retained)
	}
	if err := b.server.Serve(); err != nil {
		return b.startFailed(fmt.Errorf("serve: %w", err))
	}
	b.serving.Store(true)
	b.wg.Add(1)
	go b.expireLoop()
	b.log.Info("inboxmq started", "mqtt", addrString(b.mqttLn), "websocket", addrString(b.wsLn),
		"http", addrString(b.httpLn), "admin", addrString(b.adminLn), "store", b.cfg.Store, "node_id", b.cfg.NodeID, "single_login", b.cfg.Inbox.SingleLogin,
		"version", version.Get().String())
	return nil
}

// listenLimited opens an MQTT listener behind the connection limits.
// The limits wrap the TCP listener, under TLS, so a TLS handshake is also
// bound by the connect timeout.
// With PROXY protocol on, the header is read under the limits (they need
// the address in it) and under TLS (it comes first on the wire). exempt
// are trusted HTTP proxies, whose clients the WebSocket handler admits.
func (b *Broker) listenLimited(address string, t TLSConfig, exempt netSet) (net.Listener, *limitedListener, error) {
	var limited *limitedListener
	ln, err := b.listen(address, t, func(ln net.Listener) net.Listener {
		if len(b.proxyTrusted) > 0 {
			ln = proxyProtocol(ln, b.proxyTrusted, b.cfg.Listeners.ProxyProtocol.HeaderTimeout)
		}
		limited = newLimitedListener(ln, b.cfg.Limits.ConnectTimeout, b.cfg.Limits.ConnectionsPerIP, &b.refusedConns, b.log)
		limited.proxied, limited.exempt = len(b.proxyTrusted) > 0, exempt
		b.limited = append(b.limited, limited)
		return limited
	})
	return ln, limited, err
}

func (b *Broker) startFailed(err error) error {
	_ = b.Close()
	return err
}

func addrString(ln net.Listener) string {
	if ln == nil {
		return ""
	}
	return ln.Addr().String()
}

// MQTTAddr, WebSocketAddr and HTTPAddr (and AdminAddr) return the bound
// addresses ("" when disabled), useful when the config asked for port 0.
func (b *Broker) MQTTAddr() string      { return addrString(b.mqttLn) }
func (b *Broker) WebSocketAddr() string { return addrString(b.wsLn) }
func (b *Broker) HTTPAddr() string      { return addrString(b.httpLn) }

// expireLoop drops messages older than the retention period. Both the
// period and the interval are read at each round: a reload changes them.
func (b *Broker) expireLoop() {
	defer b.wg.Done()
	every := b.live.Load().Inbox.ExpireInterval
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case now := <-t.C:
			settings := b.live.Load().Inbox
			if settings.ExpireInterval != every {
				every = settings.ExpireInterval
				t.Reset(every)
			}
			n, err := b.store.ExpireBefore(context.Background(), now.Add(-settings.Retention))
			if err != nil {
				b.log.Error("inbox expiry failed", "error", err)
			} else if n > 0 {
				b.log.Info("inbox messages expired", "count", n)
			}
		}
	}
}

// Close shuts down gracefully: clients get DISCONNECT (server shutting
// down), listeners close, deliveries stop, and the store is flushed.
func (b *Broker) Close() error {
	b.closeOnce.Do(func() {
		var errs []error
		b.reloadMu.Lock() // a reload in progress ends first; none starts after (reload.go)
		close(b.stop)
		b.reloadMu.Unlock()
		if b.httpSrv != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := b.httpSrv.Shutdown(ctx); err != nil {
				errs = append(errs, fmt.Errorf("http: %w", err))
			}
			cancel()
		} else if b.httpLn != nil {
			b.httpLn.Close()
		}
		if b.adminSrv != nil {
			b.adminSrv.Close() // scrapes and admin calls are retried by their callers
		} else if b.adminLn != nil {
			b.adminLn.Close()
		}
		if b.server != nil {
			for _, l := range b.limited {
				l.gate.drain(2 * time.Second) // before mochi waits for its clients
			}
			b.endConnections()
			_ = b.server.Close() // always nil in mochi v2.7.9
		}
		if b.notices != nil {
			if err := b.notices.Close(); err != nil {
				errs = append(errs, fmt.Errorf("notification channel: %w", err))
			}
		}
		if b.delivery != nil {
			b.delivery.Close()
		}
		if b.service != nil {
			b.service.Close()
		}
		if b.sessions != nil {
			b.sessions.Close()
		}
		if o := b.emitter.outbox.Swap(nil); o != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			if err := o.Close(ctx); err != nil {
				// Not lost: they wait in the store for the next start.
				b.log.Warn("events not all delivered before shutdown", "error", err)
			}
			cancel()
		}
		b.wg.Wait()
		if b.node != nil {
			if err := b.node.Close(); err != nil {
				errs = append(errs, fmt.Errorf("cluster: %w", err))
			}
		}
		if err := b.closeStore(); err != nil {
			errs = append(errs, err)
		}
		b.closeErr = errors.Join(errs...)
		b.log.Info("inboxmq stopped")
	})
	return b.closeErr
}

// endConnections ends every connection before mochi's Close, and waits
// (5 s at most) until they are gone. mochi v2.7.9's Close lists each
// listener's clients with Clients.GetByListener, which takes the clients'
// read lock twice; a connection removing itself in between (a clean
// session ending) waits for the write lock and blocks both for ever, so
// Close never returns. With no connection left, none removes itself then.
// MQTT 5 clients get DISCONNECT 0x8B, 3.1.1 clients a closed socket.
func (b *Broker) endConnections() {
	for _, cl := range b.server.Clients.GetAll() {
		if !cl.Net.Inline && !cl.Closed() {
			access.EndConnection(b.server, cl, packets.ErrServerShuttingDown)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for atomic.LoadInt64(&b.server.Info.ClientsConnected) > 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
}

// NewLogger builds the process logger from the log config. A broker
// given this logger changes its level when a reload changes log.level.
func NewLogger(c LogConfig, w io.Writer) (*slog.Logger, error) {
	level, err := parseLevel(c.Level)
	if err != nil {
		return nil, err
	}
	lh := leveledHandler{level: new(slog.LevelVar)}
	lh.level.Set(level)
	opts := &slog.HandlerOptions{Level: lh.level}
	if c.Format == "json" {
		lh.Handler = slog.NewJSONHandler(w, opts)
	} else {
		lh.Handler = slog.NewTextHandler(w, opts)
	}
	return slog.New(lh), nil
}

// leveledHandler is NewLogger's handler: it carries the level it
// follows, for New to find.
type leveledHandler struct {
	slog.Handler
	level *slog.LevelVar
}

func parseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug, nil
	case "info", "":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("unknown level %q (debug, info, warn, error)", s)
}
