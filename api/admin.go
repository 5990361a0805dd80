package api

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/messaging"
)

// The endpoints of admin and service accounts (the admin listener):
// notices, direct messages sent for a user, presence and kicks.

type noticeBody struct {
	UID     json.RawMessage    `json:"uid"`
	UIDs    *[]json.RawMessage `json:"uids"` // nil: absent; empty: refused
	Content string             `json:"content"`
	MsgType int                `json:"msgtype"`
	Event   string             `json:"event"`
	MsgID   json.RawMessage    `json:"msgid"`
}

func (a *api) sendNotice(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	var body noticeBody
	if !a.decode(w, r, &body) {
		return
	}
	n := messaging.Notice{Content: body.Content, MsgType: body.MsgType, Event: body.Event, Ref: string(body.MsgID)}
	var raw []json.RawMessage
	if body.UIDs != nil {
		// A back-end whose recipient list came out empty must not notify
		// everyone: that is said by leaving out uid and uids.
		if len(*body.UIDs) == 0 {
			writeError(w, http.StatusBadRequest, bridge.CodeMissingField, "uids is empty; leave out uid and uids to notify everyone")
			return
		}
		raw = *body.UIDs
	}
	if len(body.UID) > 0 && string(body.UID) != "null" {
		raw = append(raw, body.UID)
	}
	for _, u := range raw {
		uid, ok := uidString(u)
		if !ok {
			writeError(w, http.StatusBadRequest, bridge.CodeBadUID, "uids must be uids (numbers or strings)")
			return
		}
		n.UIDs = append(n.UIDs, uid)
	}
	m, err := a.Service.SendNotice(r.Context(), me, n)
	if err != nil {
		a.reply(w, r, err, 0)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"ok": true, "msgid": m.ID, "time": m.Time})
}

// uidString accepts a uid as a JSON string or a non-negative integer.
func uidString(raw json.RawMessage) (string, bool) {
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, acl.ValidUID(s)
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err == nil {
		if _, err := strconv.ParseUint(n.String(), 10, 64); err == nil {
			return n.String(), true
		}
	}
	return "", false
}

func (a *api) online(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	uid := r.URL.Query().Get("uid")
	if !acl.ValidUID(uid) {
		writeError(w, http.StatusBadRequest, bridge.CodeBadUID, "uid is not a valid uid")
		return
	}
	n := 0
	if d, ok := a.Connections.(DeploymentPresence); ok {
		var err error
		if n, err = d.OnlineEverywhere(r.Context(), uid); err != nil {
			a.Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			writeError(w, http.StatusServiceUnavailable, bridge.CodeInternal, "presence unavailable, try again later")
			return
		}
	} else {
		n = a.Connections.Online(uid)
	}
	writeJSON(w, http.StatusOK, map[string]any{"uid": uid, "online": n > 0, "devices": n})
}

// DeploymentPresence is offered by Connections of a node that shares Redis
// with others: GET /api/v1/online then counts the connections on every
// node, not only this one's.
type DeploymentPresence interface {
	OnlineEverywhere(ctx context.Context, uid string) (int, error)
}

func (a *api) kick(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	var body struct {
		UID    json.RawMessage `json:"uid"`
		Reason string          `json:"reason"`
	}
	if !a.decode(w, r, &body) {
		return
	}
	uid, ok := uidString(body.UID)
	if !ok {
		writeError(w, http.StatusBadRequest, bridge.CodeBadUID, "uid is not a valid uid")
		return
	}
	if body.Reason == "" {
		body.Reason = "logged out by an administrator"
	}
	n := a.Connections.Kick(uid, body.Reason)
	a.Log.Info("kicked by api", "uid", uid, "by", me.UID, "connections", n)
	writeJSON(w, http.StatusOK, map[string]any{"uid": uid, "kicked": n})
}
