package api

import (
	"net/http"

	"github.com/inboxmq/inboxmq/messaging"
)

// editBody is the body of PUT /api/v1/messages/{msgid}: the new text.
type editBody struct {
	Msg string `json:"msg"`
}

// editMessage replaces the text of a message the caller sent, as
// im/editmsg does (messaging.Service.EditMessage).
func (a *api) editMessage(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	var body editBody
	if !a.decode(w, r, &body) {
		return
	}
	a.reply(w, r, a.Service.EditMessage(r.Context(), me, "", r.PathValue("msgid"), body.Msg), http.StatusOK)
}
