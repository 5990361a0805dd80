package messaging

import "time"

// The settings a configuration reload changes while the Service runs.
// Each is swapped as a whole (an atomic pointer), so an operation reads
// either the old settings or the new ones, never a mix: it loads them
// once and uses that copy throughout.

// Rules are the operations' settings that may change at run time.
type Rules struct {
	// DeleteWindow is how long after sending the sender may delete a
	// message (0: no limit); EditWindow how long it may edit one (0: never).
	DeleteWindow time.Duration
	EditWindow   time.Duration
	// MaxBlocks caps each user's block list (0: no cap).
	MaxBlocks int
	// EmitMessages sends a "message" event for every direct message (needs
	// an Emitter).
	EmitMessages bool
}

// SetRules replaces the rules; operations that start after it returns
// follow the new ones.
func (h *Service) SetRules(r Rules) { h.live.Store(&r) }

// rules are the current rules: load them once per operation.
func (h *Service) rules() *Rules { return h.live.Load() }

func rulesOf(o Options) Rules {
	return Rules{DeleteWindow: o.DeleteWindow, EditWindow: o.EditWindow, MaxBlocks: o.MaxBlocks, EmitMessages: o.EmitMessages}
}

// SetPush turns the push fallback on (p.After > 0, with an Emitter), off,
// or changes its delay or check interval. The check in progress, if any,
// finishes first. Messages stored while it was off have no push check:
// their recipients get no push event for them.
func (h *Service) SetPush(p PushOptions) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	if old := h.pushes.Load(); old != nil {
		if old.opts == p {
			return
		}
		h.pushes.Store(nil)
		old.close()
	}
	if h.opts.Emitter == nil || p.After <= 0 {
		return
	}
	if p.Interval <= 0 {
		p.Interval = time.Second
	}
	h.pushes.Store(newPushScheduler(h, p))
}
