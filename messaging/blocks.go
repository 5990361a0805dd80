package messaging

import (
	"context"
	"errors"
	"fmt"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
)

// A user's block list names the uids whose direct messages the user
// refuses. It is kept in the store (inbox.Blocks), so it holds on every
// node and across restarts. Only direct messages are refused: notices come
// from admin and service accounts, which a user cannot block.

// Block adds uid to by's block list. Blocking a uid already listed is no
// change and succeeds.
func (h *Service) Block(ctx context.Context, by Actor, uid string) error {
	if err := checkBlockTarget(by, uid); err != nil {
		return err
	}
	maxBlocks := h.rules().MaxBlocks
	_, err := h.opts.Store.Block(ctx, by.UID, uid, maxBlocks)
	if errors.Is(err, inbox.ErrTooManyBlocks) {
		return refusal(bridge.CodeTooLarge, fmt.Sprintf("at most %d uids can be blocked", maxBlocks))
	}
	if err != nil {
		return fmt.Errorf("block: %w", err)
	}
	return nil
}

// Unblock removes uid from by's block list; a uid not listed is no change.
func (h *Service) Unblock(ctx context.Context, by Actor, uid string) error {
	if err := checkBlockTarget(by, uid); err != nil {
		return err
	}
	if _, err := h.opts.Store.Unblock(ctx, by.UID, uid); err != nil {
		return fmt.Errorf("unblock: %w", err)
	}
	return nil
}

// BlockList returns by's block list in byte order.
func (h *Service) BlockList(ctx context.Context, by Actor) ([]string, error) {
	list, err := h.opts.Store.BlockList(ctx, by.UID)
	if err != nil {
		return nil, fmt.Errorf("block list: %w", err)
	}
	return list, nil
}

func checkBlockTarget(by Actor, uid string) error {
	switch {
	case !acl.ValidUID(uid):
		return refusal(bridge.CodeBadUID, "uid is not a valid uid")
	case uid == by.UID:
		return refusal(bridge.CodeBadUID, "cannot block yourself")
	}
	return nil
}

// checkNotBlocked refuses a direct message from sender to a recipient who
// blocked the sender, before anything is stored. It runs before the
// dedupe lookup too: a resend of a message stored before the block is
// refused like a new one, since the store cannot be asked whether a
// request is known without storing it. The copies stored before the block
// stay where they are.
func (h *Service) checkNotBlocked(ctx context.Context, sender, recipient string) error {
	blocked, err := h.opts.Store.IsBlocked(ctx, recipient, sender)
	if err != nil {
		return fmt.Errorf("check block list: %w: %w", inbox.ErrNotStored, err)
	}
	if blocked {
		return blockedRefusal(recipient)
	}
	return nil
}

// refuseIfBlocked has req refused when recipient blocked sender. A store
// that checks inside Submit (inbox.BlockingSubmitter; Redis reads the
// block list in its submit script) gets the check with the write, in the
// same round trip; for any other store it is checkNotBlocked first.
func (h *Service) refuseIfBlocked(ctx context.Context, req *inbox.Request, sender, recipient string) error {
	if s, ok := h.opts.Store.(inbox.BlockingSubmitter); ok && s.SubmitChecksBlocks() {
		req.RefuseIfBlocked = sender
		return nil
	}
	return h.checkNotBlocked(ctx, sender, recipient)
}

// blockedRefusal is the Error envelope a blocked sender gets, whichever
// way the block was found.
func blockedRefusal(recipient string) error {
	return refusal(bridge.CodeBlocked, recipient+" does not accept your messages")
}
