package broker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/messaging"
)

// startEvents builds the event outbox from the configured sinks: the
// webhook, the legacy Redis channels and the Redis Stream. Events wait in
// the inbox store until their sink took them (at least once, across
// restarts and on any node).
func (b *Broker) startEvents() error {
	o, err := b.newOutbox(b.cfg.Events)
	if err != nil {
		return err
	}
	if o == nil {
		if b.cfg.Push.After > 0 {
			b.log.Info("push events are off: configure events.webhook or redis")
		}
		return nil
	}
	b.emitter.outbox.Store(o)
	b.metrics.watchEvents(o)
	return nil
}

// newOutbox builds an outbox for cfg's sinks; nil when there are none.
func (b *Broker) newOutbox(cfg EventsConfig) (*events.Outbox, error) {
	var sinks []events.Sink
	if cfg.Webhook.URL != "" {
		w, err := events.NewWebhookSink(events.WebhookOptions{
			URL: cfg.Webhook.URL, Secret: cfg.Webhook.Secret, Timeout: cfg.Webhook.Timeout,
			Retries: cfg.Webhook.Retries, Log: b.log,
		})
		if err != nil {
			return nil, fmt.Errorf("events webhook: %w", err)
		}
		sinks = append(sinks, w)
	}
	if b.redis != nil {
		sinks = append(sinks, events.NewRedisSink(events.RedisOptions{Client: b.redis, Channels: map[string]string{
			events.TypePush:       cfg.Channels.Push,
			events.TypePushCancel: cfg.Channels.Push,
			events.TypeRead:       cfg.Channels.Push, // like push_cancel: it clears notifications
			events.TypeLogin:      cfg.Channels.Login,
			events.TypeLogout:     cfg.Channels.Logout,
			events.TypeMessage:    cfg.Channels.Message,
		}}))
		if cfg.Stream.Key != "" {
			st, err := events.NewStreamSink(events.StreamOptions{Client: b.redis, Key: cfg.Stream.Key, MaxLen: cfg.Stream.MaxLen})
			if err != nil {
				return nil, fmt.Errorf("events stream: %w", err)
			}
			sinks = append(sinks, st)
		}
	}
	if len(sinks) == 0 {
		return nil, nil
	}
	o, err := events.NewOutbox(events.OutboxOptions{
		Store: b.store, Sinks: sinks, MaxAge: cfg.MaxAge, RetryMax: cfg.RetryMaxInterval, Buffer: cfg.Queue, Log: b.log,
		OnDrop: b.metrics.eventDropped, OnRetry: b.metrics.eventFailed, OnGiveUp: b.metrics.eventGivenUp,
	})
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	return o, nil
}

// errNoSinks refuses an event that must be stored when no sink is
// configured (a reload removed them): a push check is then tried again
// later rather than recorded as done.
var errNoSinks = errors.New("events: no sink configured")

// liveEmitter hands events to the current outbox, which a reload that
// changes the events section replaces (nil: no sink, events are not
// kept). The messaging service and the delivery hook hold the emitter,
// never an outbox.
type liveEmitter struct {
	outbox atomic.Pointer[events.Outbox]
}

func (e *liveEmitter) Emit(ev events.Event) {
	if o := e.outbox.Load(); o != nil {
		o.Emit(ev)
	}
}

func (e *liveEmitter) EmitStored(ctx context.Context, ev events.Event) error {
	if o := e.outbox.Load(); o != nil {
		return o.EmitStored(ctx, ev)
	}
	return errNoSinks
}

// pushOptions are the push fallback's settings: off without a sink to
// send the push events to.
func (b *Broker) pushOptions(cfg PushConfig) messaging.PushOptions {
	if b.emitter.outbox.Load() == nil {
		return messaging.PushOptions{}
	}
	return messaging.PushOptions{After: cfg.After, Interval: cfg.CheckInterval}
}

// systemActor sends the notices that come from the back-end's channel.
var systemActor = messaging.Actor{UID: "system", Role: acl.RoleService}

// handleNotice takes one notice from the Redis notification channel.
// Every node receives it. Without needStore each node delivers it to its
// own online users; with needStore one node (the first to claim it) stores
// it, and the stored notice reaches the other nodes' users like any message.
func (b *Broker) handleNotice(ctx context.Context, n events.Notice) error {
	notice := messaging.Notice{UIDs: n.UIDs, Content: n.Content, MsgType: n.MsgType, Event: n.Event, Ref: n.MsgID}
	if !n.NeedStore {
		return b.service.SendLiveNotice(notice)
	}
	if b.node != nil {
		first, err := b.claimNotice(ctx, n)
		if err != nil || !first {
			return err
		}
	}
	_, err := b.service.SendNotice(ctx, systemActor, notice)
	return err
}

// claimNotice makes one node of the cluster store a notice: the first to
// set its key. The same notice published twice within a minute is stored
// once.
func (b *Broker) claimNotice(ctx context.Context, n events.Notice) (bool, error) {
	h := sha256.Sum256([]byte(fmt.Sprintf("%q|%q|%d|%q|%q", strings.Join(n.UIDs, ","), n.Content, n.MsgType, n.Event, n.MsgID)))
	key := b.cfg.Redis.Prefix + "{notices}:" + hex.EncodeToString(h[:16])
	ok, err := b.redis.SetNX(ctx, key, b.cfg.NodeID, time.Minute).Result()
	if err != nil {
		return false, fmt.Errorf("claim notice: %w", err)
	}
	return ok, nil
}
