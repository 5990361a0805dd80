package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/bridge"
	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/messaging"
)

// The endpoints of users: their conversations, history pages, notices,
// read marks and unread counts.

// Message is one message as the API shows it.
type Message struct {
	MsgID    string `json:"msgid"`
	From     string `json:"from"`
	To       string `json:"to"`
	Content  string `json:"ct"`
	Extra    string `json:"extra"`
	Time     int64  `json:"time"` // Unix milliseconds
	TS       int64  `json:"ts"`   // the same time, under the name the envelopes use
	Nickname string `json:"nickname,omitempty"`
	Avatar   string `json:"avatar,omitempty"`
	CID      string `json:"cid,omitempty"`
	Edited   int64  `json:"edited,omitempty"` // when ct was last edited, Unix milliseconds; absent: never
}

func toMessage(owner string, m inbox.Message) Message {
	out := Message{MsgID: m.ID, Content: m.Content, Extra: m.Extra, Time: m.Time, TS: m.Time, Edited: m.Edited}
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

// conversations lists the caller's conversations newest first, a page at
// a time: limit (at most PageSize) and cursor, the next of the previous
// page (the msgid of its last conversation's newest message). A thread
// that gets a message moves to the front of page 1, so a later page never
// repeats a conversation nor skips one that did not move.
func (a *api) conversations(w http.ResponseWriter, r *http.Request, me messaging.Actor) {
	limit, err := pageLimit(r)
	var seq uint64
	if cursor := r.URL.Query().Get("cursor"); err == nil && cursor != "" {
		if !inbox.ValidID(cursor) {
			err = errors.New("cursor must be the next of a previous page")
		} else if seq, err = inbox.SeqAtOrAfterID(r.Context(), a.Store, me.UID, cursor); err != nil {
			a.internal(w, r, err)
			return
		}
	}
	if err != nil {
		writeError(w, http.StatusBadRequest, bridge.CodeBadField, err.Error())
		return
	}
	if seq == 1 {
		// Nothing is below the first message (and 0 means "from the newest").
		writeJSON(w, http.StatusOK, map[string]any{"conversations": []Conversation{}, "next": ""})
		return
	}
	// One more than the page tells whether there is a next page; one more
	// again covers the notice thread, which is no conversation.
	threads, err := a.Store.Threads(r.Context(), me.UID, seq, limit+2)
	if err != nil {
		a.internal(w, r, err)
		return
	}
	out := []Conversation{}
	for _, t := range threads {
		if t.Thread != inbox.NoticeThread {
			out = append(out, Conversation{Peer: t.Thread, Last: toMessage(me.UID, t.Last), Unread: t.Unread})
		}
	}
	next := ""
	if len(out) > limit {
		out = out[:limit]
		next = out[limit-1].Last.MsgID
	}
	writeJSON(w, http.StatusOK, map[string]any{"conversations": out, "next": next})
}

// pageLimit reads the limit query parameter: PageSize when absent, at
// most PageSize.
func pageLimit(r *http.Request) (int, error) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return PageSize, nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return 0, errors.New("limit must be a positive integer")
	}
	return min(n, PageSize), nil
}

// page reads the before/limit query parameters.
func page(r *http.Request) (before string, limit int, err error) {
	before = r.URL.Query().Get("before")
	if before != "" && !inbox.ValidID(before) {
		return "", 0, errors.New("before must be a msgid")
	}
	limit, err = pageLimit(r)
	return before, limit, err
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
	TS        int64  `json:"ts"` // = time, as in the envelopes
	Broadcast bool   `json:"broadcast"`
}

func toNotice(m inbox.Message, broadcast bool) Notice {
	if m.Ref == "" {
		m.Ref = "0"
	}
	return Notice{MsgID: m.ID, Content: m.Content, MsgType: m.MsgType, Event: m.Event,
		Ref: json.RawMessage(m.Ref), Time: m.Time, TS: m.Time, Broadcast: broadcast}
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
