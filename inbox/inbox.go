package inbox

import (
	"context"
	"errors"
	"time"
)

// Kind says what a message in an inbox is; it decides the envelope the
// broker renders for delivery.
type Kind uint8

const (
	// KindDirect is a direct message from Peer to the inbox owner (SendMsg).
	KindDirect Kind = 1
	// KindSent is the sender's own copy of a direct message to Peer (MsgSent).
	KindSent Kind = 2
	// KindNotice is a system notice from an admin or service (SystemNot).
	KindNotice Kind = 3
	// KindDelete tells the owner that message Ref was deleted (DelMsg).
	KindDelete Kind = 4
	// KindReceipt tells the owner that Peer has read up to message Ref (ReadMsg).
	KindReceipt Kind = 5
	// KindEdit tells the owner that message Ref of the conversation with
	// Peer now reads Content (EditMsg).
	KindEdit Kind = 6
	// KindReadSync tells the owner's other devices that the owner read the
	// conversation with Peer up to message Ref, leaving MsgType unread
	// messages in all (ReadMsg with "unread").
	KindReadSync Kind = 7
)

// String names the kind after the envelope's _method_.
func (k Kind) String() string {
	switch k {
	case KindDirect:
		return "SendMsg"
	case KindSent:
		return "MsgSent"
	case KindNotice:
		return "SystemNot"
	case KindDelete:
		return "DelMsg"
	case KindReceipt:
		return "ReadMsg"
	case KindEdit:
		return "EditMsg"
	case KindReadSync:
		return "ReadSync" // delivered as a ReadMsg; named apart for metrics
	}
	return "unknown"
}

// Message is one entry of an inbox. The store assigns Seq, ID and Time on
// Append; every other field is set by the caller and stored as given.
type Message struct {
	UID  string // inbox owner
	Seq  uint64 // position in the owner's inbox, dense, from 1
	ID   string // msgid: decimal uint64 (IDGen), unique in the deployment, increasing in every inbox
	Time int64  // append time, Unix milliseconds

	Kind     Kind
	Peer     string // direct: sender uid; sent/receipt: the other uid
	Nickname string // direct: sender's nickname, stamped by the broker
	Avatar   string // direct: sender's avatar, stamped by the broker
	Content  string // ct
	Extra    string // extra, opaque to the broker
	CID      string // sent: the client-side id echoed to the sender
	MsgType  int    // notice: msgtype; read sync: the owner's unread total
	Event    string // notice: event
	Ref      string // delete/receipt/edit/read sync: the msgid referred to; notice: legacy msgid literal
	Edited   int64  // when Content was last replaced (History.Edit), Unix milliseconds; 0: never
}

// Options are the retention limits every store enforces.
type Options struct {
	// MaxPerInbox is the most messages one inbox keeps; on overflow the
	// oldest are dropped. 0 means no limit.
	MaxPerInbox int
	// Retention is how long a message is kept; ExpireBefore does the sweep.
	Retention time.Duration
	// NodeID (0..1023) makes message ids unique across nodes sharing a store.
	NodeID int
	// DedupeWindow is how long a request with a key is remembered
	// (inbox.Request.Key); DefaultDedupeWindow when 0.
	DedupeWindow time.Duration
	// DedupePerInbox caps the requests remembered per inbox, the oldest
	// forgotten first; DefaultDedupePerInbox when 0. A record takes at most
	// MaxRequestKey plus 80 bytes, so this bounds the bytes per inbox.
	DedupePerInbox int
	// OnDrop is told of every message dropped by retention (never silently).
	// reason is "overflow" or "expired". It may be nil.
	OnDrop func(uid string, n int, reason string)
}

// Dedupe returns DedupeWindow and DedupePerInbox with their defaults.
func (o Options) Dedupe() (window time.Duration, perInbox int) {
	window, perInbox = o.DedupeWindow, o.DedupePerInbox
	if window <= 0 {
		window = DefaultDedupeWindow
	}
	if perInbox <= 0 {
		perInbox = DefaultDedupePerInbox
	}
	return window, perInbox
}

// ErrClosed is returned by a store after Close.
var ErrClosed = errors.New("inbox: store closed")

// Store is the inbox log. Implementations: pebble (embedded), redis.
type Store interface {
	// Append durably adds msgs, each to the inbox named by its UID, as one
	// logical message: all entries get the same new ID and Time, and each a
	// new Seq in its inbox. It returns the entries with those fields set.
	// When it returns nil the entries survive a crash (fsync'd or equivalent).
	Append(ctx context.Context, msgs []Message) ([]Message, error)

	// Read returns up to limit messages of uid's inbox with Seq >= from,
	// in Seq order. Messages dropped by retention are skipped.
	Read(ctx context.Context, uid string, from uint64, limit int) ([]Message, error)

	// Bounds returns the lowest Seq still held for uid (0 when none is held)
	// and the highest Seq ever assigned to uid (0 when none was; it does not
	// go back when retention drops messages, so Seqs are never reused).
	Bounds(ctx context.Context, uid string) (first, last uint64, err error)

	// Cursor returns the delivery position of one device of uid: every
	// message with Seq <= cursor has been acknowledged by that device.
	// ok is false when the device has never had a cursor.
	Cursor(ctx context.Context, uid, device string) (seq uint64, ok bool, err error)

	// SetCursor moves a device's cursor forward (never backward). It need
	// not be synced: after a crash a device may see acknowledged messages
	// again, never miss one.
	SetCursor(ctx context.Context, uid, device string, seq uint64) error

	// ExpireBefore drops every message appended before t, in all inboxes,
	// and returns how many were dropped.
	ExpireBefore(ctx context.Context, t time.Time) (int, error)

	// Close flushes and releases the store.
	Close() error

	Submitter
	History
	Editor
	Pushes
	Sessions
	Retained
	Outbox
	Blocks
}

// Pushes is the push schedule behind the push fallback: (uid, seq) pairs
// that become due at a time. It is durable, so a due push survives a
// restart, and shared, so nodes sharing a store split the work.
type Pushes interface {
	// SchedulePush adds entries to the schedule (unsynced writes are fine:
	// a crash may lose a push, never a message).
	SchedulePush(ctx context.Context, entries []PushEntry) error

	// ClaimDuePushes returns up to limit entries due at or before now,
	// earliest first, and makes them due again at now+lease: an entry is
	// claimed by one caller at a time, also across nodes, and comes back
	// unless the claimer removes it with DonePushes, so a claimer that fails
	// or dies mid-check loses nothing. The returned entries carry their new
	// Due.
	ClaimDuePushes(ctx context.Context, now time.Time, lease time.Duration, limit int) ([]PushEntry, error)

	// DonePushes removes claimed entries (as ClaimDuePushes returned them)
	// from the schedule. An entry claimed again since is left alone.
	DonePushes(ctx context.Context, entries []PushEntry) error
}

// PushEntry is one scheduled push check.
type PushEntry struct {
	UID string
	Seq uint64
	Due time.Time // millisecond precision
}

// History is the part of a Store that serves conversations, notices and
// unread counts from the same log. Every message belongs to at most one
// thread of its inbox (see Message.Thread); a thread is the owner's
// conversation with one peer, or the owner's targeted notices.
type History interface {
	// Thread returns the messages of uid's inbox in thread, newest first,
	// with Seq < before (before 0: from the newest), at most limit.
	Thread(ctx context.Context, uid, thread string, before uint64, limit int) ([]Message, error)

	// Threads returns the threads of uid's inbox that still hold a
	// message, with their newest message and unread count, newest first
	// (by the Seq of that message, which no two threads share): those
	// whose newest Seq is below before (before 0: from the newest), at
	// most limit (limit <= 0: all of them). Passing the last returned
	// thread's Last.Seq as before reads the next page.
	Threads(ctx context.Context, uid string, before uint64, limit int) ([]ThreadSummary, error)

	// MarkRead moves uid's read mark of thread forward to seq (never back).
	// Any thread name is accepted, so callers may keep marks for threads
	// that live in another inbox (BroadcastInbox).
	MarkRead(ctx context.Context, uid, thread string, seq uint64) error

	// ReadMark returns uid's read mark of thread (0 when never marked).
	ReadMark(ctx context.Context, uid, thread string) (uint64, error)

	// Unread counts the incoming messages (KindDirect, KindNotice) of
	// uid's threads with Seq above the thread's read mark.
	Unread(ctx context.Context, uid string) (Unread, error)

	// Delete removes the message with seq from uid's inbox: from Read,
	// Thread, Threads and Unread alike. Seqs are not reused and Bounds
	// keeps its last. ok is false when no such message is held.
	Delete(ctx context.Context, uid string, seq uint64) (ok bool, err error)
}

// NoticeThread is the thread of a user's targeted notices.
const NoticeThread = "$notices"

// BroadcastInbox is the inbox that keeps notices sent to everyone. It is
// not a valid uid, so no user owns it.
const BroadcastInbox = "$broadcast"

// Thread names the thread a message belongs to in its owner's inbox: the
// peer for direct messages and the sender's copies, NoticeThread for
// notices, "" for messages outside any thread (deletions, receipts).
func (m Message) Thread() string {
	switch m.Kind {
	case KindDirect, KindSent:
		return m.Peer
	case KindNotice:
		return NoticeThread
	}
	return ""
}

// Incoming reports whether the message counts as unread until marked read.
func (m Message) Incoming() bool { return m.Kind == KindDirect || m.Kind == KindNotice }

// ThreadSummary is one entry of Threads.
type ThreadSummary struct {
	Thread   string
	Last     Message // the newest message held in the thread
	Unread   int
	ReadMark uint64
}

// Unread is the unread state of one inbox.
type Unread struct {
	Threads     map[string]int // thread -> unread incoming messages (threads with none omitted)
	NoticeTypes map[int]int    // NoticeThread's unread notices by MsgType (types with none omitted)
	Total       int            // sum of Threads
}
