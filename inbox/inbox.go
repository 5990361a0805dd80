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
	MsgType  int    // notice: msgtype
	Event    string // notice: event
	Ref      string // delete/receipt: the msgid referred to; notice: legacy msgid literal
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
	// OnDrop is told of every message dropped by retention (never silently).
	// reason is "overflow" or "expired". It may be nil.
	OnDrop func(uid string, n int, reason string)
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
}
