package broker

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/inboxmq/inboxmq/events"
)

// eventsBacklogTimeout bounds the store reads of one scrape's backlog.
const eventsBacklogTimeout = 2 * time.Second

// eventsCollector exports, at each scrape, what the current event outbox
// holds and has sent: inboxmq_events_backlog{sink} (read from the store,
// one read per sink) and inboxmq_events_sent_total{sink}. The outbox may
// be replaced (a reload that changes the events section): watchEvents
// points the collector at the new one.
type eventsCollector struct {
	outbox        atomic.Pointer[events.Outbox]
	backlog, sent *prometheus.Desc
}

func newEventsCollector() *eventsCollector {
	return &eventsCollector{
		backlog: prometheus.NewDesc("inboxmq_events_backlog",
			"Events waiting in the store for their sink (retries included).", []string{"sink"}, nil),
		sent: prometheus.NewDesc("inboxmq_events_sent_total",
			"Events the sink took, by sink (restarts at 0 when a reload replaces the outbox).", []string{"sink"}, nil),
	}
}

func (c *eventsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.backlog
	ch <- c.sent
}

func (c *eventsCollector) Collect(ch chan<- prometheus.Metric) {
	o := c.outbox.Load()
	if o == nil {
		return
	}
	for _, s := range o.Stats().Sinks {
		ch <- prometheus.MustNewConstMetric(c.sent, prometheus.CounterValue, float64(s.Sent), s.Name)
	}
	ctx, cancel := context.WithTimeout(context.Background(), eventsBacklogTimeout)
	defer cancel()
	// On a store error the backlog is left out of this scrape (a gap, not
	// a made-up value); inboxmq_store_errors_total{op="outbox_len"} says why.
	if n, err := o.Backlog(ctx); err == nil {
		for sink, v := range n {
			ch <- prometheus.MustNewConstMetric(c.backlog, prometheus.GaugeValue, float64(v), sink)
		}
	}
}

// watchEvents exports o's backlog and sent counts (replacing the outbox
// watched before, if any) and starts its sinks' counters at 0.
func (m *metrics) watchEvents(o *events.Outbox) {
	var names []string
	for _, s := range o.Stats().Sinks {
		names = append(names, s.Name)
	}
	m.watchSinks(names)
	m.events.outbox.Store(o)
}

// watchSinks starts the dropped, failed (retried) and given-up counters
// of each sink at 0. It is idempotent, so a reload that adds sinks may
// call it with the whole new list (WithLabelValues creates a series once
// and is safe for concurrent use).
func (m *metrics) watchSinks(names []string) {
	for _, name := range names {
		m.eventsDropped.WithLabelValues(name)
		m.eventsFailed.WithLabelValues(name)
		m.eventsGivenUp.WithLabelValues(name)
	}
}
