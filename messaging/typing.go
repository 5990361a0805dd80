package messaging

import (
	"context"
	"fmt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/internal/keyrate"
)

// Typing signals are limited per sender apart from the message rate: an
// app sends one every few seconds while its user types, so a steady one a
// second with a burst of 3 lets every honest app through and keeps a
// script from using the recipient's connections as a free channel.
const (
	typingPerSecond = 1
	typingBurst     = 3
)

// EphemeralDelivery is a Delivery that can also hand an envelope that is
// never stored to a user's connections on every node (the delivery hook
// does, through the cluster). Without it, Typing reaches this node only.
// Ephemeral may wait on the network up to ctx: it is called for the
// request it answers.
type EphemeralDelivery interface {
	Ephemeral(ctx context.Context, uid string, envelope []byte) error
}

// Typing tells to, if online now, that by is typing: a Typing envelope at
// QoS 0, never stored, so nobody offline ever sees a stale one. It is
// refused with rate_limited over typingPerSecond, and with blocked when to
// blocked by, like a message.
func (h *Service) Typing(ctx context.Context, by Actor, to string) error {
	switch {
	case !acl.ValidUID(to):
		return refusal(bridge.CodeBadUID, "uid is not a valid uid")
	case to == by.UID:
		return refusal(bridge.CodeBadUID, "cannot signal typing to yourself")
	}
	if ok, _ := h.typing.Allow(by.UID); !ok {
		return refusal(bridge.CodeRateLimited, fmt.Sprintf("at most %d typing signals a second", typingPerSecond))
	}
	if err := h.checkNotBlocked(ctx, by.UID, to); err != nil {
		return err
	}
	env := bridge.Typing(by.UID, h.now().UnixMilli())
	switch d := h.delivery().(type) {
	case EphemeralDelivery:
		if err := d.Ephemeral(ctx, to, env); err != nil {
			return fmt.Errorf("typing: %w", err)
		}
	case Delivery:
		if err := d.Live([]string{to}, env); err != nil {
			return fmt.Errorf("typing: %w", err)
		}
	}
	return nil
}

func newTypingLimiter() *keyrate.Limiter { return keyrate.NewLimiter(typingPerSecond, typingBurst) }
