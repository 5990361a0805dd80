package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/internal/logsafe"
	"github.com/inboxmq/inboxmq/messaging"
)

// sendMessage is POST /api/v1/messages, the HTTP twin of im/sendmsg for
// the app's back-end: a service (or admin) account sends a direct message
// as the user named by "from". The body is an im/sendmsg payload read by
// the same parser (bridge.Parse: same fields, types and limits) plus
// "from", and the message goes through the same operation
// (messaging.Service.SendMessage: same stamping, same dedupe by cid). The
// account is trusted to name the sender, which is why only admin and
// service accounts may, on the admin listener only, and why every send is
// logged with the account's name.
func (a *api) sendMessage(w http.ResponseWriter, r *http.Request, by messaging.Actor) {
	payload, err := io.ReadAll(r.Body)
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, bridge.CodeTooLarge, "request body too large")
			return
		}
		writeError(w, http.StatusBadRequest, bridge.CodeBadJSON, "the request body could not be read")
		return
	}
	req, err := bridge.Parse(bridge.TopicSendMsg, payload, a.Limits)
	if err != nil {
		a.reply(w, r, err, 0)
		return
	}
	from, present, ok := fromField(payload)
	if !present {
		writeError(w, http.StatusBadRequest, bridge.CodeMissingField, "from is required: the uid the message is sent as")
		return
	}
	if !ok {
		writeError(w, http.StatusBadRequest, bridge.CodeBadUID, "from must be a uid (a number or a string)")
		return
	}
	// The sender is a user: what it sends is stamped and stored as if it
	// had sent it over MQTT, with no profile (there is no connection).
	sender := messaging.Actor{UID: from, Role: acl.RoleUser}
	m, err := a.Service.SendMessage(r.Context(), sender, req.UID, req.Msg, req.Extra, req.CID)
	if err != nil {
		a.Log.Warn("message for a user not sent", "account", by.UID, "from", from, "to", req.UID, "error", err)
		a.reply(w, r, err, 0)
		return
	}
	a.Log.Info("message sent for a user", "account", by.UID, "from", from, "to", req.UID, "msgid", m.ID,
		"cid", logsafe.Clip(req.CID))
	writeJSON(w, http.StatusOK, map[string]any{"ok": true, "msgid": m.ID, "time": m.Time})
}

// fromField reads "from" of a payload bridge.Parse accepted (so one JSON
// object): a uid as a string or a non-negative integer. null counts as
// absent, as in bridge.Parse.
func fromField(payload []byte) (from string, present, ok bool) {
	var body struct {
		From json.RawMessage `json:"from"`
	}
	if err := json.Unmarshal(payload, &body); err != nil || len(body.From) == 0 || string(body.From) == "null" {
		return "", false, false
	}
	from, ok = uidString(body.From)
	return from, true, ok
}
