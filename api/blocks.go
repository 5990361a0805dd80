package api

import (
	"context"
	"net/http"

	"github.com/inboxmq/inboxmq/messaging"
)

// Blocker changes and lists a user's block list; *messaging.Service
// implements it. It is found on Options.Service by type assertion, so a
// Service without it serves the block endpoints as 404.
type Blocker interface {
	Block(ctx context.Context, by messaging.Actor, uid string) error
	Unblock(ctx context.Context, by messaging.Actor, uid string) error
	BlockList(ctx context.Context, by messaging.Actor) ([]string, error)
}

func (a *api) blocker(w http.ResponseWriter) (Blocker, bool) {
	b, ok := a.Service.(Blocker)
	if !ok {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
	return b, ok
}

// block: PUT /api/v1/blocks/{uid}, idempotent like any PUT.
func (a *api) block(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	if b, ok := a.blocker(w); ok {
		a.reply(w, r, b.Block(r.Context(), me, r.PathValue("uid")), http.StatusOK)
	}
}

// unblock: DELETE /api/v1/blocks/{uid}; a uid not listed is no error.
func (a *api) unblock(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	if b, ok := a.blocker(w); ok {
		a.reply(w, r, b.Unblock(r.Context(), me, r.PathValue("uid")), http.StatusOK)
	}
}

// blocks: GET /api/v1/blocks lists the caller's blocked uids.
func (a *api) blocks(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	b, ok := a.blocker(w)
	if !ok {
		return
	}
	list, err := b.BlockList(r.Context(), me)
	if err != nil {
		a.reply(w, r, err, http.StatusOK)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"blocks": list})
}
