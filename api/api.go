package api

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
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
	EditMessage(ctx context.Context, by messaging.Actor, to, msgid, msg string) error
	MarkRead(ctx context.Context, by messaging.Actor, peer, msgid string) error
	MarkNoticesRead(ctx context.Context, by messaging.Actor, msgid string) error
	SendNotice(ctx context.Context, by messaging.Actor, n messaging.Notice) (inbox.Message, error)
	SendMessage(ctx context.Context, from messaging.Actor, to, msg, extra, cid string) (inbox.Message, error)
}

// Reader is what the API reads of the inbox log: it writes nothing itself
// (every write goes through Service). Every inbox.Store is one.
type Reader interface {
	inbox.Finder
	Thread(ctx context.Context, uid, thread string, before uint64, limit int) ([]inbox.Message, error)
	Threads(ctx context.Context, uid string, before uint64, limit int) ([]inbox.ThreadSummary, error)
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
	// Limits are those of im/sendmsg over MQTT, for POST /api/v1/messages.
	Limits bridge.Limits
	Log    *slog.Logger
	// Backup writes a consistent copy of the broker's data as a tar
	// stream (POST /api/v1/admin/backup); nil when there is nothing to
	// copy (the Redis store).
	Backup func(ctx context.Context, w io.Writer) error
	// Reload reads the broker's config file again and applies it (POST
	// /api/v1/admin/reload); ErrNoConfigFile when there is none.
	Reload func() (ReloadResult, error)
}

type api struct {
	Options
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
	case bridge.CodeForbidden, bridge.CodeBlocked:
		status = http.StatusForbidden
	case bridge.CodeNotFound:
		status = http.StatusNotFound
	case bridge.CodeTooLate:
		status = http.StatusConflict // the message is too old for the edit or delete window
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
