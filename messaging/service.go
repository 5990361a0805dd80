package messaging

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/events"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/keyrate"
	"github.com/inboxmq/inboxmq/internal/logsafe"
)

// The operations below are what users and back-ends can do to inboxes.
// MQTT requests (the delivery hook) and the HTTP API both call them, so
// the rules live in one place. They return a *bridge.Error for the
// caller's faults (bad or forbidden requests); any other error is the
// broker's (internal), and wraps inbox.ErrNotStored when nothing was
// stored.

// Store is what the operations need of the inbox log.
type Store interface {
	inbox.Submitter
	Bounds(ctx context.Context, uid string) (first, last uint64, err error)
	Read(ctx context.Context, uid string, from uint64, limit int) ([]inbox.Message, error)
	Cursor(ctx context.Context, uid, device string) (seq uint64, ok bool, err error)
	Delete(ctx context.Context, uid string, seq uint64) (ok bool, err error)
	inbox.Editor
	MarkRead(ctx context.Context, uid, thread string, seq uint64) error
	ReadMark(ctx context.Context, uid, thread string) (uint64, error)
	Unread(ctx context.Context, uid string) (inbox.Unread, error)
	ClaimDuePushes(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]inbox.PushEntry, error)
	DonePushes(ctx context.Context, entries []inbox.PushEntry) error
	inbox.Blocks
}

// Delivery hands what the operations stored to the connections: the
// delivery hook implements it. Its methods must not block on the network.
type Delivery interface {
	// Stored is told of entries just stored (never of a resend found
	// stored): their inboxes' connections get them, other nodes a wake.
	Stored(entries []inbox.Message)
	// Live delivers an envelope that is not stored to the connections of
	// uids online now on this node (none: every broadcast subscriber).
	Live(uids []string, envelope []byte) error
	// ProfileChanged: what uid sends from its current connections is
	// stamped with this nickname and avatar from now on.
	ProfileChanged(uid, nickname, avatar string)
	// Pushed: a push event went out for uid's message seq.
	Pushed(uid string, seq uint64)
}

// Emitter receives events for the back-end; *events.Outbox implements it.
// Emit must not block.
type Emitter interface {
	Emit(events.Event)
}

// Metrics is told what the operations did. Its methods must not block.
type Metrics interface {
	// Appended: one request stored msgs in took.
	Appended(msgs []inbox.Message, took time.Duration)
	// Pushed: a push event was emitted for an unacknowledged message.
	Pushed()
}

// Options configure a Service.
type Options struct {
	Store  Store // required
	Limits bridge.Limits
	// SingleLogin: a user's connections share one delivery cursor, which
	// then says what the user acknowledged (see ackedUpTo).
	SingleLogin bool
	// DeleteWindow is how long after sending the sender may delete a
	// message (0: no limit); EditWindow how long it may edit one (0: never).
	DeleteWindow time.Duration
	EditWindow   time.Duration
	// MaxBlocks caps each user's block list (0: no cap).
	MaxBlocks int
	// Emitter, if set, receives the push events and, with EmitMessages,
	// every direct message.
	Emitter      Emitter
	EmitMessages bool
	// Push configures the push fallback (needs Emitter); SetPush changes it.
	Push    PushOptions
	Metrics Metrics
	Log     *slog.Logger
}

// Service performs the operations. Create it with New, hand it the
// delivery side with Attach, and Close it after the last operation.
type Service struct {
	opts Options
	live atomic.Pointer[Rules] // Options' rules, then SetRules's (live.go)
	mu   sync.Mutex            // serialises SetPush and Close; guards closed
	// pushes is the push fallback's scheduler, nil while it is off. Every
	// stored message reads it: an atomic load, not the lock.
	pushes atomic.Pointer[pushScheduler]
	closed bool
	// deliv holds the Delivery (nil until Attach). Every stored message
	// reads it, so it is an atomic load, not a lock.
	deliv  atomic.Pointer[deliveryBox]
	now    func() time.Time // time.Now; tests pin it to check the edit and delete windows
	typing *keyrate.Limiter // typing signals per sender
}

// New returns a Service; with Options.Push.After and an Emitter it starts
// checking the push schedule.
func New(opts Options) (*Service, error) {
	if opts.Store == nil {
		return nil, errors.New("messaging: a Store is required")
	}
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	if opts.Metrics == nil {
		opts.Metrics = noMetrics{}
	}
	s := &Service{opts: opts, now: time.Now, typing: newTypingLimiter()}
	s.SetRules(rulesOf(opts))
	s.SetPush(opts.Push)
	return s, nil
}

// Attach gives the Service the delivery side. Until then, what is stored
// reaches connections only when they next read their inbox.
func (h *Service) Attach(d Delivery) {
	h.deliv.Store(&deliveryBox{d})
}

func (h *Service) delivery() Delivery {
	if b := h.deliv.Load(); b != nil {
		return b.d
	}
	return nil
}

// PushEnabled reports whether push events are on: then acknowledgements
// matter to the push checks (see AckedThread).
func (h *Service) PushEnabled() bool { return h.pushes.Load() != nil }

// Close stops the push checks, waiting for the one in progress. It may be
// called more than once.
func (h *Service) Close() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.closed = true
	if p := h.pushes.Swap(nil); p != nil {
		p.close()
	}
}

type deliveryBox struct{ d Delivery }

type noMetrics struct{}

func (noMetrics) Appended([]inbox.Message, time.Duration) {}
func (noMetrics) Pushed()                                 {}

// clip keeps client-controlled strings short in logs and envelopes.
func clip(s string) string { return logsafe.Clip(s) }

// Actor is who performs an operation: an authenticated account and the
// profile stamped on what it sends.
//
// It is the identity a login established (auth.Identity), over MQTT or
// HTTP, with the profile the connection currently stamps.
type Actor = auth.Identity

// MaxNoticeRecipients caps the uids of one targeted notice.
const MaxNoticeRecipients = 1000

func refusal(code, detail string) error { return &bridge.Error{Code: code, Detail: detail} }

// SendMessage sends a direct message and returns the recipient's copy
// (its ID is the msgid both parties see). It returns once both copies are
// durably stored.
func (h *Service) SendMessage(ctx context.Context, from Actor, to, msg, extra, cid string) (inbox.Message, error) {
	switch {
	case !acl.ValidUID(to):
		return inbox.Message{}, refusal(bridge.CodeBadUID, "uid is not a valid uid")
	case to == from.UID:
		return inbox.Message{}, refusal(bridge.CodeBadUID, "cannot send a message to yourself")
	case msg == "":
		return inbox.Message{}, refusal(bridge.CodeEmptyMessage, "msg is empty")
	case h.opts.Limits.MaxContent > 0 && len(msg) > h.opts.Limits.MaxContent:
		return inbox.Message{}, refusal(bridge.CodeTooLarge, fmt.Sprintf("msg is over %d bytes", h.opts.Limits.MaxContent))
	}
	req := h.request([]inbox.Message{
		{UID: to, Kind: inbox.KindDirect, Peer: from.UID, Nickname: from.Nickname, Avatar: from.Avatar, Content: msg, Extra: extra},
		{UID: from.UID, Kind: inbox.KindSent, Peer: to, Content: msg, Extra: extra, CID: cid},
	})
	if req.Key = requestKey(from.UID, cid); req.Key != "" {
		req.Sum = contentSum(to, msg, extra)
	}
	if err := h.refuseIfBlocked(ctx, &req, from.UID, to); err != nil {
		return inbox.Message{}, err
	}
	r, err := h.submitAndNotify(ctx, req)
	if errors.Is(err, inbox.ErrBlocked) {
		return inbox.Message{}, blockedRefusal(to)
	}
	if err != nil {
		return inbox.Message{}, err
	}
	out := r.Msgs
	if r.Duplicate {
		return out[0], nil // a resend: stored already, and announced then
	}
	if h.rules().EmitMessages && h.opts.Emitter != nil {
		h.opts.Emitter.Emit(events.Event{Type: events.TypeMessage, Data: map[string]any{
			"uid": to, "from": from.UID, "msgid": out[0].ID, "ct": msg, "extra": extra,
		}})
	}
	return out[0], nil
}

// DeleteMessage deletes a message by its sender: both copies leave history
// and the recipient's undelivered queue, and both parties get DelMsg.
// peer, when given, must be the message's recipient.
func (h *Service) DeleteMessage(ctx context.Context, by Actor, msgid, peer string) error {
	window := h.rules().DeleteWindow
	store := h.opts.Store
	sent, ok, err := inbox.FindByID(ctx, store, by.UID, msgid)
	if err != nil {
		return err
	}
	switch {
	case ok && sent.Kind == inbox.KindDirect:
		return refusal(bridge.CodeForbidden, "only the sender may delete a message")
	case !ok || sent.Kind != inbox.KindSent || (peer != "" && peer != sent.Peer):
		return refusal(bridge.CodeNotFound, "no message "+clip(msgid)+" sent by you")
	case tooLate(sent, window, h.now()):
		return refusal(bridge.CodeTooLate, "messages can be deleted only within "+window.String()+" of sending")
	}
	// Tell both sides first: if the broker dies before the deletes below,
	// the sender can delete again (its copy is still there).
	if _, err := h.submitAndNotify(ctx, h.request([]inbox.Message{
		{UID: sent.Peer, Kind: inbox.KindDelete, Peer: by.UID, Ref: sent.ID},
		{UID: by.UID, Kind: inbox.KindDelete, Peer: sent.Peer, Ref: sent.ID},
	})); err != nil {
		return err
	}
	recv, ok, err := inbox.FindByID(ctx, store, sent.Peer, sent.ID)
	if err != nil {
		return err
	}
	if ok && recv.Kind == inbox.KindDirect && recv.Peer == by.UID {
		if _, err := store.Delete(ctx, sent.Peer, recv.Seq); err != nil {
			return fmt.Errorf("delete recipient copy: %w", err)
		}
	}
	if _, err := store.Delete(ctx, by.UID, sent.Seq); err != nil {
		return fmt.Errorf("delete sender copy: %w", err)
	}
	return nil
}

// MarkRead marks by's conversation with peer read up to msgid, sends peer
// a ReadMsg receipt, and tells by's own devices (ReadMsg with by's new
// unread total, see readSync) and the back-end (a read event).
func (h *Service) MarkRead(ctx context.Context, by Actor, peer, msgid string) error {
	if !acl.ValidUID(peer) || peer == by.UID {
		return refusal(bridge.CodeBadUID, "uid must be the peer whose messages you read")
	}
	m, ok, err := inbox.FindByID(ctx, h.opts.Store, by.UID, msgid)
	if err != nil {
		return err
	}
	if !ok || m.Thread() != peer {
		return refusal(bridge.CodeNotFound, "no message "+clip(msgid)+" in your conversation with "+peer)
	}
	if err := h.opts.Store.MarkRead(ctx, by.UID, peer, m.Seq); err != nil {
		return err
	}
	if _, err := h.submitAndNotify(ctx, h.request([]inbox.Message{{UID: peer, Kind: inbox.KindReceipt, Peer: by.UID, Ref: m.ID}})); err != nil {
		return err
	}
	return h.readSync(ctx, by.UID, peer, m.ID)
}

// MarkNoticesRead marks by's notices read up to msgid: the targeted ones
// in its inbox and the notices to everyone (its mark of the broadcast log).
func (h *Service) MarkNoticesRead(ctx context.Context, by Actor, msgid string) error {
	if !inbox.ValidID(msgid) {
		return refusal(bridge.CodeBadField, "msgid must be a msgid")
	}
	for _, uid := range []string{by.UID, inbox.BroadcastInbox} {
		// Everything below the first id above msgid is read.
		next, err := inbox.SeqAtOrAfterID(ctx, h.opts.Store, uid, incrementID(msgid))
		if err != nil {
			return err
		}
		if next <= 1 {
			continue
		}
		thread := inbox.NoticeThread
		if uid == inbox.BroadcastInbox {
			thread = inbox.BroadcastInbox // the caller's mark for the shared log
		}
		if err := h.opts.Store.MarkRead(ctx, by.UID, thread, next-1); err != nil {
			return err
		}
	}
	return nil
}

// incrementID returns the decimal id + 1.
func incrementID(id string) string {
	n, _ := strconv.ParseUint(id, 10, 64)
	if n == math.MaxUint64 {
		return "18446744073709551616" // above every id: ids compare by length first
	}
	return strconv.FormatUint(n+1, 10)
}

// Notice is a system notice from an admin or a back-end service.
type Notice struct {
	UIDs    []string // recipients; none means everyone (the broadcast topic)
	Content string
	MsgType int
	Event   string
	Ref     string // the legacy msgid literal echoed in SystemNot ("0" when empty)
}

// SendNotice stores a notice (per recipient, or in the broadcast log) and
// delivers it. Only admin and service accounts may send notices. It
// returns the notice as stored (its ID is the msgid every recipient sees:
// the entries of one notice share it), in the broadcast log or in the
// first recipient's inbox.
func (h *Service) SendNotice(ctx context.Context, by Actor, n Notice) (inbox.Message, error) {
	switch {
	case by.Role != acl.RoleAdmin && by.Role != acl.RoleService:
		return inbox.Message{}, refusal(bridge.CodeForbidden, "only admin and service accounts send notices")
	case n.Content == "":
		return inbox.Message{}, refusal(bridge.CodeEmptyMessage, "content is empty")
	case h.opts.Limits.MaxContent > 0 && len(n.Content) > h.opts.Limits.MaxContent:
		return inbox.Message{}, refusal(bridge.CodeTooLarge, fmt.Sprintf("content is over %d bytes", h.opts.Limits.MaxContent))
	case len(n.UIDs) > MaxNoticeRecipients:
		return inbox.Message{}, refusal(bridge.CodeTooLarge, fmt.Sprintf("at most %d uids per notice", MaxNoticeRecipients))
	}
	if n.Ref == "" {
		n.Ref = "0"
	}
	if err := bridge.ValidateMsgIDLiteral(n.Ref); err != nil {
		return inbox.Message{}, err
	}
	notice := inbox.Message{Kind: inbox.KindNotice, Content: n.Content, MsgType: n.MsgType, Event: n.Event, Ref: n.Ref, Peer: by.UID}
	if len(n.UIDs) == 0 {
		notice.UID = inbox.BroadcastInbox
		r, err := h.submitAndNotify(ctx, inbox.Request{Msgs: []inbox.Message{notice}})
		if err != nil {
			return inbox.Message{}, err
		}
		h.opts.Log.Info("broadcast notice sent", "by", by.UID, "msgtype", n.MsgType, "seq", r.Msgs[0].Seq, "msgid", r.Msgs[0].ID)
		return r.Msgs[0], nil
	}
	msgs := make([]inbox.Message, 0, len(n.UIDs))
	seen := make(map[string]bool, len(n.UIDs))
	for _, uid := range n.UIDs {
		if !acl.ValidUID(uid) {
			return inbox.Message{}, refusal(bridge.CodeBadUID, "uid "+clip(uid)+" is not a valid uid")
		}
		if !seen[uid] {
			seen[uid] = true
			m := notice
			m.UID = uid
			msgs = append(msgs, m)
		}
	}
	r, err := h.submitAndNotify(ctx, h.request(msgs))
	if err != nil {
		return inbox.Message{}, err
	}
	if len(r.Msgs) == 0 {
		// ErrPartial dropped every entry: none is certainly stored.
		return inbox.Message{}, fmt.Errorf("notice: no entry stored: %w", inbox.ErrPartial)
	}
	return r.Msgs[0], nil
}

// SendLiveNotice delivers a notice only to the connections online on this
// node now (uids, or everyone via broadcast); nothing is stored, so offline
// users never see it. Every node runs it for a notice from the back-end's
// Redis channel without needStore.
func (h *Service) SendLiveNotice(n Notice) error {
	if n.Ref == "" {
		n.Ref = "0"
	}
	// Not stored, so no store stamps it: ts is the time it is sent.
	payload, err := bridge.AppendEnvelope(nil, inbox.Message{Kind: inbox.KindNotice, Content: n.Content,
		MsgType: n.MsgType, Event: n.Event, Ref: n.Ref, Time: time.Now().UnixMilli()})
	if err != nil {
		return err
	}
	d := h.delivery()
	if d == nil {
		return nil
	}
	if err := d.Live(n.UIDs, payload); err != nil {
		return fmt.Errorf("live notice: %w", err)
	}
	return nil
}

// UpdateProfile changes the nickname and avatar stamped on what uid sends
// from its current connections.
func (h *Service) UpdateProfile(uid, nickname, avatar string) {
	if d := h.delivery(); d != nil {
		d.ProfileChanged(uid, nickname, avatar)
	}
}

// submitAndNotify stores one logical message and hands it to the delivery
// side. A duplicate (a resend found stored) is handed to nobody: it was
// when it was stored. ErrPartial (a Redis Cluster wrote the commit point
// but not everything) counts as stored: the error is logged, the rest
// handed on.
func (h *Service) submitAndNotify(ctx context.Context, req inbox.Request) (inbox.Receipt, error) {
	start := time.Now()
	r, err := h.opts.Store.Submit(ctx, req)
	if errors.Is(err, inbox.ErrPartial) {
		h.opts.Log.Error("message stored for its recipient, not everywhere", "error", err)
		r.Msgs = slices.DeleteFunc(r.Msgs, func(m inbox.Message) bool { return m.Seq == 0 })
	} else if err != nil {
		return inbox.Receipt{}, err
	}
	if r.Duplicate {
		return r, nil
	}
	h.opts.Metrics.Appended(r.Msgs, time.Since(start))
	if d := h.delivery(); d != nil {
		d.Stored(r.Msgs)
	}
	return r, nil
}
