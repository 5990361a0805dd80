package messaging

import (
	"context"
	"fmt"
	"time"

	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
)

// tooLate reports whether m, stored at m.Time, is older than window at
// now. A window of 0 or less is no limit; callers that want 0 to mean
// "never" (editing) check that first.
func tooLate(m inbox.Message, window time.Duration, now time.Time) bool {
	return window > 0 && now.Sub(time.UnixMilli(m.Time)) > window
}

// readSync tells uid's own devices, and the back-end, that uid read its
// conversation with peer up to msgid: every device sets its badge from the
// unread total instead of waiting for its next refetch, and the back-end
// can clear push notifications already shown. The device copy is stored
// like any message, so a device that is offline gets it when it returns.
//
// The read mark is already moved when this runs, so a failure here leaves
// badges stale until the next refetch, never a wrong mark: the error is
// returned so the caller can retry (marking again is harmless).
func (h *Service) readSync(ctx context.Context, uid, peer, msgid string) error {
	unread, err := h.opts.Store.Unread(ctx, uid)
	if err != nil {
		return fmt.Errorf("read sync: unread count: %w", err)
	}
	if _, err := h.submitAndNotify(ctx, h.request([]inbox.Message{{UID: uid, Kind: inbox.KindReadSync, Peer: peer,
		Ref: msgid, MsgType: unread.Total}})); err != nil {
		return err
	}
	if h.opts.Emitter != nil {
		h.opts.Emitter.Emit(events.Event{Type: events.TypeRead, Data: map[string]any{
			"uid": uid, "peer": peer, "msgid": msgid, "unread": unread.Total,
		}})
	}
	return nil
}
