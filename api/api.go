package api

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/logsafe"
	"github.com/inboxmq/inboxmq/messaging"
)

// PageSize is the default and largest page of messages or notices.
const PageSize = 50

// Service performs writes; *messaging.Service implements it.
type Service interface {
	DeleteMessage(ctx context.Context, by messaging.Actor, msgid, peer string) error
	MarkRead(ctx context.Context, by messaging.Actor, peer, msgid string) error
	MarkNoticesRead(ctx context.Context, by messaging.Actor, msgid string) error
	SendNotice(ctx context.Context, by messaging.Actor, n messaging.Notice) error
}

// Reader is what the API reads of the inbox log: it writes nothing itself
// (every write goes through Service). Every inbox.Store is one.
type Reader interface {
	inbox.Finder
	Thread(ctx context.Context, uid, thread string, before uint64, limit int) ([]inbox.Message, error)
	Threads(ctx context.Context, uid string) ([]inbox.ThreadSummary, error)
	ReadMark(ctx context.Context, uid, thread string) (uint64, error)
	Unread(ctx context.Context, uid string) (inbox.Unread, error)
}

// Connections answers presence and kicks; the delivery hook implements it.
type Connections interface {
	Kick(uid, reason string) int
	Online(uid string) int
}

// Options configure the API.
type Options struct {
	Store       Reader      // required
	Service     Service     // required
	Connections Connections // required
	// Credentials returns the current token verifier and static accounts
	// (either may be nil); it is called per request, so reloads apply.
	Credentials func() auth.Credentials
	MaxBody     int64 // request body limit in bytes
	Log         *slog.Logger
}

type api struct {
	Options
}

// New returns the API handler, serving paths under /api/v1/.
func New(opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = 256 << 10
	}
	a := &api{opts}
	mux := http.NewServeMux()
	user := func(h func(http.ResponseWriter, *http.Request, messaging.Actor)) http.HandlerFunc {
		return a.authenticated(false, h)
	}
	admin := func(h func(http.ResponseWriter, *http.Request, messaging.Actor)) http.HandlerFunc {
		return a.authenticated(true, h)
	}
	mux.HandleFunc("GET /api/v1/conversations", user(a.conversations))
	mux.HandleFunc("GET /api/v1/conversations/{peer}/messages", user(a.messages))
	mux.HandleFunc("POST /api/v1/conversations/{peer}/read", user(a.markRead))
	mux.HandleFunc("DELETE /api/v1/messages/{msgid}", user(a.deleteMessage))
	mux.HandleFunc("GET /api/v1/notices", user(a.notices))
	mux.HandleFunc("POST /api/v1/notices/read", user(a.markNoticesRead))
	mux.HandleFunc("GET /api/v1/unread", user(a.unread))
	mux.HandleFunc("POST /api/v1/notices", admin(a.sendNotice))
	mux.HandleFunc("GET /api/v1/online", admin(a.online))
	mux.HandleFunc("POST /api/v1/kick", admin(a.kick))
	mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "not_found", "no such endpoint")
	})
	return mux
}

// authenticated resolves the caller: a bearer token (users, token admins)
// or basic auth (static accounts). adminOnly endpoints need the admin or
// service role.
func (a *api) authenticated(adminOnly bool, h func(http.ResponseWriter, *http.Request, messaging.Actor)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		actor, ok, err := a.identify(r)
		if errors.Is(err, auth.ErrBusy) {
			w.Header().Set("Retry-After", "1")
			writeError(w, http.StatusServiceUnavailable, "busy", "too many logins at once; try again")
			return
		}
		if !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="inboxmq"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a valid bearer token or account is required")
			return
		}
		if adminOnly && actor.Role != acl.RoleAdmin && actor.Role != acl.RoleService {
			writeError(w, http.StatusForbidden, bridge.CodeForbidden, "admin or service account required")
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, a.MaxBody)
		h(w, r, actor)
	}
}

// bcryptWait is how long a Basic-auth request waits for a bcrypt slot
// before it is answered 503: guesses over HTTP must not queue up in front
// of MQTT logins of the back-end's services.
const bcryptWait = 200 * time.Millisecond

func (a *api) identify(r *http.Request) (messaging.Actor, bool, error) {
	creds := a.Credentials()
	tokens, accounts := creds.Tokens, creds.Accounts
	if name, password, ok := r.BasicAuth(); ok {
		if accounts == nil {
			return messaging.Actor{}, false, nil
		}
		id, ok, err := accounts.AuthenticateWait(name, password, bcryptWait)
		if err != nil {
			return messaging.Actor{}, false, err
		}
		if !ok {
			a.Log.Warn("api login refused", "account", logsafe.Clip(name), "remote", r.RemoteAddr, "reason", "bad_password")
			return messaging.Actor{}, false, nil
		}
		return messaging.Actor{UID: id.UID, Role: id.Role}, true, nil
	}
	scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	ok = ok && strings.EqualFold(scheme, "Bearer") // schemes are case-insensitive (RFC 9110)
	if !ok || tokens == nil {
		return messaging.Actor{}, false, nil
	}
	id, err := tokens.VerifyBearer(strings.TrimSpace(token))
	if err != nil {
		a.Log.Warn("api token refused", "remote", r.RemoteAddr, "error", err)
		return messaging.Actor{}, false, nil
	}
	if accounts != nil && accounts.Has(id.UID) {
		return messaging.Actor{}, false, nil // account names are not token subjects
	}
	return messaging.Actor{UID: id.UID, Role: id.Role, Nickname: id.Nickname, Avatar: id.Avatar}, true, nil
}

// Message is one message as the API shows it.
type Message struct {
	MsgID    string `json:"msgid"`
	From     string `json:"from"`
	To       string `json:"to"`
	Content  string `json:"ct"`
	Extra    string `json:"extra"`
	Time     int64  `json:"time"` // Unix milliseconds
	Nickname string `json:"nickname,omitempty"`
	Avatar   string `json:"avatar,omitempty"`
	CID      string `json:"cid,omitempty"`
}

func toMessage(owner string, m inbox.Message) Message {
	out := Message{MsgID: m.ID, Content: m.Content, Extra: m.Extra, Time: m.Time}
	if m.Kind == inbox.KindDirect {
		out.From, out.To, out.Nickname, out.Avatar = m.Peer, owner, m.Nickname, m.Avatar
	} else {
		out.From, out.To, out.CID = owner, m.Peer, m.CID
	}
	return out
}

// Conversation is one entry of the conversation list.
type Conversation struct {
	Peer   string  `json:"peer"`
	Last   Message `json:"last"`
	Unread int     `json:"unread"`
}

func (a *api) conversations(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	threads, err := a.Store.Threads(r.Context(), me.UID)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := []Conversation{}
	for _, t := range threads {
		if t.Thread == inbox.NoticeThread {
			continue
		}
		out = append(out, Conversation{Peer: t.Thread, Last: toMessage(me.UID, t.Last), Unread: t.Unread})
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out})
}

// page reads the before/limit query parameters.
func page(r *http.Request) (before string, limit int, err error) {
	before = r.URL.Query().Get("before")
	if before != "" && !inbox.ValidID(before) {
		return "", 0, errors.New("before must be a msgid")
	}
	limit = PageSize
	if s := r.URL.Query().Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 {
			return "", 0, errors.New("limit must be a positive integer")
		}
		limit = min(n, PageSize)
	}
	return before, limit, nil
}

// seqBefore turns a msgid cursor into a Seq bound for Thread.
func (a *api) seqBefore(ctx context.Context, uid, before string) (uint64, error) {
	if before == "" {
		return 0, nil
	}
	return inbox.SeqAtOrAfterID(ctx, a.Store, uid, before)
}

func (a *api) messages(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	peer := r.PathValue("peer")
	if !acl.ValidUID(peer) {
		writeError(w, http.StatusBadRequest, bridge.CodeBadUID, "peer is not a valid uid")
		return
	}
	before, limit, err := page(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, bridge.CodeBadField, err.Error())
		return
	}
	seq, err := a.seqBefore(r.Context(), me.UID, before)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	msgs, err := a.Store.Thread(r.Context(), me.UID, peer, seq, limit)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := make([]Message, 0, len(msgs))
	for _, m := range msgs {
		out = append(out, toMessage(me.UID, m))
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": out, "next": nextCursor(len(msgs), limit, func() string { return msgs[len(msgs)-1].ID })})
}

// nextCursor is the msgid to pass as before for the next page, or "" at the end.
func nextCursor(n, limit int, last func() string) string {
	if n < limit {
		return ""
	}
	return last()
}

type msgidBody struct {
	MsgID string `json:"msgid"`
}

func (a *api) markRead(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	var body msgidBody
	if !a.decode(w, r, &body) {
		return
	}
	a.reply(w, r, a.Service.MarkRead(r.Context(), me, r.PathValue("peer"), body.MsgID), http.StatusOK)
}

func (a *api) deleteMessage(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	a.reply(w, r, a.Service.DeleteMessage(r.Context(), me, r.PathValue("msgid"), ""), http.StatusOK)
}

// Notice is one notice as the API shows it.
type Notice struct {
	MsgID     string `json:"msgid"`
	Content   string `json:"ct"`
	MsgType   int    `json:"msgtype"`
	Event     string `json:"event"`
	Ref       any    `json:"ref"` // the legacy msgid given by the sender
	Time      int64  `json:"time"`
	Broadcast bool   `json:"broadcast"`
}

func toNotice(m inbox.Message, broadcast bool) Notice {
	if m.Ref == "" {
		m.Ref = "0"
	}
	return Notice{MsgID: m.ID, Content: m.Content, MsgType: m.MsgType, Event: m.Event,
		Ref: json.RawMessage(m.Ref), Time: m.Time, Broadcast: broadcast}
}

// notices merges the caller's targeted notices and the broadcast log,
// newest first, paged by msgid (ids are unique across both).
func (a *api) notices(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	before, limit, err := page(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, bridge.CodeBadField, err.Error())
		return
	}
	ctx := r.Context()
	var sources [2][]inbox.Message
	for i, uid := range []string{me.UID, inbox.BroadcastInbox} {
		seq, err := a.seqBefore(ctx, uid, before)
		if err == nil {
			sources[i], err = a.Store.Thread(ctx, uid, inbox.NoticeThread, seq, limit)
		}
		if err != nil {
			a.internal(w, r, err)
			return
		}
	}
	out := make([]Notice, 0, limit)
	mine, all := sources[0], sources[1]
	for len(out) < limit && (len(mine) > 0 || len(all) > 0) {
		if len(all) == 0 || (len(mine) > 0 && inbox.CompareIDs(mine[0].ID, all[0].ID) > 0) {
			out, mine = append(out, toNotice(mine[0], false)), mine[1:]
		} else {
			out, all = append(out, toNotice(all[0], true)), all[1:]
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"notices": out, "next": nextCursor(len(out), limit, func() string { return out[len(out)-1].MsgID })})
}

// markNoticesRead marks targeted and broadcast notices read up to msgid.
func (a *api) markNoticesRead(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	var body msgidBody
	if !a.decode(w, r, &body) {
		return
	}
	a.reply(w, r, a.Service.MarkNoticesRead(r.Context(), me, body.MsgID), http.StatusOK)
}

// Unread is GET /api/v1/unread.
type Unread struct {
	Peers     map[string]int `json:"peers"`
	Notices   map[string]int `json:"notices"` // by msgtype
	Broadcast int            `json:"broadcast"`
	Total     int            `json:"total"`
}

func (a *api) unread(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	ctx := r.Context()
	u, err := a.Store.Unread(ctx, me.UID)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := Unread{Peers: map[string]int{}, Notices: map[string]int{}, Total: u.Total}
	for thread, n := range u.Threads {
		if thread != inbox.NoticeThread {
			out.Peers[thread] = n
		}
	}
	for msgtype, n := range u.NoticeTypes {
		out.Notices[strconv.Itoa(msgtype)] = n
	}
	// Broadcasts live in one shared log: unread = held above the caller's mark.
	mark, err := a.Store.ReadMark(ctx, me.UID, inbox.BroadcastInbox)
	if err == nil {
		var first, last uint64
		first, last, err = a.Store.Bounds(ctx, inbox.BroadcastInbox)
		if first > 0 && last > max(mark, first-1) {
			out.Broadcast = int(last - max(mark, first-1))
		}
	}
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out.Total += out.Broadcast
	writeJSON(w, http.StatusOK, out)
}

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
	a.reply(w, r, a.Service.SendNotice(r.Context(), me, n), http.StatusAccepted)
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
	n := a.Connections.Online(uid)
	writeJSON(w, http.StatusOK, map[string]any{"uid": uid, "online": n > 0, "devices": n})
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

// decode reads a JSON body, answering 400/413 itself on failure.
func (a *api) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	err := dec.Decode(v)
	if err == nil && dec.More() {
		// One JSON object per request: what follows it is not ignored.
		err = errors.New("data after the JSON object")
	}
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeError(w, http.StatusRequestEntityTooLarge, bridge.CodeTooLarge, "request body too large")
			return false
		}
		writeError(w, http.StatusBadRequest, bridge.CodeBadJSON, "request body must be a JSON object of the documented shape")
		return false
	}
	return true
}

// reply answers an operation's result.
func (a *api) reply(w http.ResponseWriter, r *http.Request, err error, okStatus int) {
	if err == nil {
		writeJSON(w, okStatus, map[string]any{"ok": true})
		return
	}
	var be *bridge.Error
	if !errors.As(err, &be) {
		a.internal(w, r, err)
		return
	}
	status := http.StatusBadRequest
	switch be.Code {
	case bridge.CodeForbidden:
		status = http.StatusForbidden
	case bridge.CodeNotFound:
		status = http.StatusNotFound
	case bridge.CodeTooLarge:
		status = http.StatusRequestEntityTooLarge
	case bridge.CodeRateLimited:
		status = http.StatusTooManyRequests
	}
	writeError(w, status, be.Code, be.Detail)
}

// internal logs the error and answers without details: 503 when the
// store certainly kept nothing, else 500 (a write may have been stored: a
// message resent with the same cid is then found, not stored twice).
func (a *api) internal(w http.ResponseWriter, r *http.Request, err error) {
	a.Log.Error("api request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	if errors.Is(err, inbox.ErrNotStored) {
		writeError(w, http.StatusServiceUnavailable, bridge.CodeInternal, "not stored, try again later")
		return
	}
	writeError(w, http.StatusInternalServerError, bridge.CodeInternal, "internal error, try again later")
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
