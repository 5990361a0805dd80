package broker

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/hooks/access"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/version"
)

// metrics is the node's Prometheus registry and collectors. Counters are
// updated from hot paths (delivery, acks), so each update is one atomic add
// on a pre-resolved child; nothing here blocks.
//
// Every labelled series whose label values are known at start (Error
// codes, login failure reasons, drop reasons, envelope methods, event
// sinks, HTTP routes, store operations) is created at 0 then, so that it
// is on the first scrape and rate() and alerts see its first increase.
type metrics struct {
	reg *prometheus.Registry

	appended      *prometheus.CounterVec // kind
	appendSeconds prometheus.Histogram   // store latency
	delivered     *prometheus.CounterVec // kind
	latency       prometheus.Histogram   // stored -> written to the connection
	ackedTotal    prometheus.Counter
	backlog       prometheus.Histogram   // messages waiting at (re)connect
	rejected      *prometheus.CounterVec // code
	dropped       *prometheus.CounterVec // reason
	authFailures  *prometheus.CounterVec // reason
	aclDenied     prometheus.Counter
	kicked        prometheus.Counter
	pushes        prometheus.Counter
	eventsDropped *prometheus.CounterVec // sink
	eventsFailed  *prometheus.CounterVec // sink
	eventsGivenUp *prometheus.CounterVec // sink
	noticesBad    prometheus.Counter
	deliveredKind [8]prometheus.Counter // by inbox.Kind, resolved once
	appendedKind  [8]prometheus.Counter
	http          *httpMetrics     // httpmetrics.go
	events        *eventsCollector // eventsmetrics.go
}

// dropReasons are the reasons inbox.Options.OnDrop is called with.
var dropReasons = []string{"overflow", "expired"}

func newMetrics(server *mqtt.Server, onlineUsers func() int, refusedConns *atomic.Int64) *metrics {
	m := &metrics{reg: prometheus.NewRegistry()}
	f := func(c prometheus.Collector) { m.reg.MustRegister(c) }
	m.appended = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_inbox_appends_total", Help: "Entries appended to inbox logs, by envelope method.",
	}, []string{"method"})
	m.appendSeconds = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "inboxmq_store_append_seconds", Help: "Durable append latency of the inbox store.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	})
	m.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_messages_out_total", Help: "Inbox and broadcast messages written to connections, by envelope method.",
	}, []string{"method"})
	m.latency = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "inboxmq_delivery_latency_seconds", Help: "Time from storing an inbox or broadcast message to writing it to a connection.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 20),
	})
	m.ackedTotal = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inboxmq_inbox_acks_total", Help: "Inbox and broadcast messages acknowledged (PUBACK) by connections.",
	})
	m.backlog = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "inboxmq_offline_queue_depth", Help: "Messages waiting for a connection when it starts delivering its inbox or the broadcast log.",
		Buckets: prometheus.ExponentialBuckets(1, 4, 10),
	})
	m.rejected = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_requests_rejected_total", Help: "Requests refused, by Error code (rate_limited included).",
	}, []string{"code"})
	m.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_messages_dropped_total", Help: "Inbox messages dropped by retention, by reason (overflow, expired).",
	}, []string{"reason"})
	m.authFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_auth_failures_total", Help: "Refused logins, by reason.",
	}, []string{"reason"})
	m.aclDenied = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inboxmq_acl_denied_total", Help: "Refused subscriptions and deliveries.",
	})
	m.kicked = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inboxmq_logouts_total", Help: "Connections logged out by a newer login or an admin.",
	})
	m.pushes = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inboxmq_push_events_total", Help: "Push events emitted for messages no device acknowledged in time.",
	})
	m.eventsDropped = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_events_dropped_total", Help: "Events dropped before they were stored (store unreachable and events.queue full), by sink.",
	}, []string{"sink"})
	m.eventsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_events_failed_total", Help: "Failed event delivery attempts that will be retried, by sink.",
	}, []string{"sink"})
	m.eventsGivenUp = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "inboxmq_events_given_up_total", Help: "Events given up undelivered at events.max_age, by sink.",
	}, []string{"sink"})
	m.noticesBad = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "inboxmq_notifications_malformed_total", Help: "Malformed notices received on the Redis notification channel.",
	})
	f(m.pushes)
	f(m.eventsDropped)
	f(m.eventsFailed)
	f(m.eventsGivenUp)
	f(m.noticesBad)
	for _, c := range []prometheus.Collector{m.appended, m.appendSeconds, m.delivered, m.latency, m.ackedTotal, m.backlog,
		m.rejected, m.dropped, m.authFailures, m.aclDenied, m.kicked} {
		f(c)
	}
	gauge := func(name, help string, v func() float64) {
		f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help}, v))
	}
	counter := func(name, help string, v func() float64) {
		f(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help}, v))
	}
	gauge("inboxmq_connections", "Connected MQTT clients.", func() float64 {
		return float64(atomic.LoadInt64(&server.Info.ClientsConnected))
	})
	gauge("inboxmq_online_users", "Users with at least one connection on this node.", func() float64 {
		return float64(onlineUsers())
	})
	counter("inboxmq_messages_in_total", "PUBLISH packets received from clients.", func() float64 {
		return float64(atomic.LoadInt64(&server.Info.MessagesReceived))
	})
	counter("inboxmq_mochi_messages_dropped_total", "Non-inbox messages mochi dropped (full outbound queue).", func() float64 {
		return float64(atomic.LoadInt64(&server.Info.MessagesDropped))
	})
	counter("inboxmq_connections_refused_total", "Connections refused by the per-IP rate limit.", func() float64 {
		return float64(refusedConns.Load())
	})
	gauge("inboxmq_memory_limit_bytes", "The Go runtime's soft memory limit (runtime.memory_limit, GOMEMLIMIT or derived; 2^63-1 when there is none).", func() float64 {
		return float64(debug.SetMemoryLimit(-1)) // -1 only reads it
	})
	f(prometheus.NewGoCollector())
	f(prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	// The usual Prometheus idiom for "which build runs where": a constant 1
	// whose labels carry the identity, joined onto other series in queries.
	build := version.Get()
	f(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "inboxmq_build_info", Help: "Always 1; the labels say which build of inboxmq this node runs.",
		ConstLabels: prometheus.Labels{"version": build.Version, "commit": build.Commit, "goversion": build.GoVersion},
	}, func() float64 { return 1 }))
	for k := inbox.KindDirect; k <= inbox.KindReadSync; k++ {
		m.deliveredKind[k] = m.delivered.WithLabelValues(k.String())
		m.appendedKind[k] = m.appended.WithLabelValues(k.String())
	}
	for _, code := range bridge.Codes() {
		m.rejected.WithLabelValues(code)
	}
	for _, why := range access.FailureReasons() {
		m.authFailures.WithLabelValues(why)
	}
	for _, why := range dropReasons {
		m.dropped.WithLabelValues(why)
	}
	m.http = newHTTPMetrics(m.reg)
	m.events = newEventsCollector()
	f(m.events)
	return m
}

// The delivery hook's Events.

func (m *metrics) Appended(msgs []inbox.Message, took time.Duration) {
	for _, msg := range msgs {
		if int(msg.Kind) < len(m.appendedKind) && m.appendedKind[msg.Kind] != nil {
			m.appendedKind[msg.Kind].Inc()
		}
	}
	m.appendSeconds.Observe(took.Seconds())
}

func (m *metrics) Delivered(kind inbox.Kind, age time.Duration) {
	if int(kind) < len(m.deliveredKind) && m.deliveredKind[kind] != nil {
		m.deliveredKind[kind].Inc()
	}
	m.latency.Observe(age.Seconds())
}

func (m *metrics) Backlog(n uint64)         { m.backlog.Observe(float64(n)) }
func (m *metrics) Acked(n int)              { m.ackedTotal.Add(float64(n)) }
func (m *metrics) Rejected(code string)     { m.rejected.WithLabelValues(code).Inc() }
func (m *metrics) Kicked()                  { m.kicked.Inc() }
func (m *metrics) Pushed()                  { m.pushes.Inc() }
func (m *metrics) eventDropped(sink string) { m.eventsDropped.WithLabelValues(sink).Inc() }
func (m *metrics) eventFailed(sink string)  { m.eventsFailed.WithLabelValues(sink).Inc() }
func (m *metrics) eventGivenUp(sink string) { m.eventsGivenUp.WithLabelValues(sink).Inc() }

func (m *metrics) noticeMalformed()       { m.noticesBad.Inc() }
func (m *metrics) authFailed(why string)  { m.authFailures.WithLabelValues(why).Inc() }
func (m *metrics) aclDeniedOnce()         { m.aclDenied.Inc() }
func (m *metrics) drop(n int, why string) { m.dropped.WithLabelValues(why).Add(float64(n)) }
