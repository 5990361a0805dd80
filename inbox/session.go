package inbox

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Session is a persistent MQTT session (3.1.1 clean session 0, MQTT 5
// session expiry above 0): what a client that does not subscribe again
// after reconnecting expects the broker to remember. It is kept in the
// same store as the inbox log, so it survives restarts and, on a shared
// store, follows the client to another node. Messages are not part of it:
// the log and the device cursors already hold them.
type Session struct {
	ID string // the broker's session id: account, separator, client id
	// Owner names the connection that holds the session (a token unique
	// per connection). Only the holder may update or end it, so a late
	// write of an old connection cannot undo what a newer one stored.
	Owner           string
	Username        string
	Listener        string
	ProtocolVersion byte
	// ExpiryInterval is how long the session outlives its connection.
	ExpiryInterval time.Duration
	// Expires is when the session ends (Unix ms); 0 while a connection
	// holds it. A node that stops without saying so (SIGKILL) leaves 0
	// behind; it counts its sessions as disconnected when it starts again.
	Expires       int64
	Node          int // the node whose connection holds or last held it
	Subscriptions []Subscription
}

// Subscription is one subscription of a Session, with its MQTT 5 options.
type Subscription struct {
	Filter            string `json:"f"`
	QoS               byte   `json:"q,omitempty"`
	NoLocal           bool   `json:"nl,omitempty"`
	RetainAsPublished bool   `json:"rap,omitempty"`
	RetainHandling    byte   `json:"rh,omitempty"`
	Identifier        int    `json:"id,omitempty"`
}

// Expired reports whether the session has ended by now.
func (s Session) Expired(now time.Time) bool {
	return s.Expires > 0 && s.Expires <= now.UnixMilli()
}

// Sessions keeps persistent sessions. Writes that a client is told of
// (a SUBACK, an UNSUBACK) are durable when they return.
type Sessions interface {
	// PutSession stores s, held by s.Owner, replacing whatever is stored
	// under s.ID: a new connection taking the session. It need not be
	// durable when it returns, only by the time a later write is: the
	// CONNACK goes out before it, so a client can lose nothing a crash
	// takes from it (a session it holds nothing in yet, or the previous
	// holder's record, subscriptions and all), and waiting for an fsync
	// here held every connection's SUBSCRIBE for one.
	PutSession(ctx context.Context, s Session) error

	// UpdateSession stores s only while the stored session is held by
	// s.Owner; ok is false (and nothing is written) otherwise.
	UpdateSession(ctx context.Context, s Session) (ok bool, err error)

	// Session returns the session stored under id, expired or not.
	Session(ctx context.Context, id string) (s Session, ok bool, err error)

	// Sessions returns every stored session, in no particular order.
	Sessions(ctx context.Context) ([]Session, error)

	// DeleteSession removes the session id if owner holds it, or whoever
	// holds it when owner is "". ok is false when nothing was removed.
	DeleteSession(ctx context.Context, id, owner string) (ok bool, err error)

	// ExpireSessions removes every session whose Expires is at or before
	// now and returns their ids.
	ExpireSessions(ctx context.Context, now time.Time) ([]string, error)
}

// sessionRecord is the stored form of a Session: JSON, so both stores share
// one codec and fields can be added without a layout change.
type sessionRecord struct {
	V       int            `json:"v"`
	ID      string         `json:"id"`
	Owner   string         `json:"o"`
	User    string         `json:"u,omitempty"`
	Lis     string         `json:"l,omitempty"`
	Proto   byte           `json:"p"`
	Expiry  int64          `json:"ei"` // seconds
	Expires int64          `json:"e,omitempty"`
	Node    int            `json:"n,omitempty"`
	Subs    []Subscription `json:"s,omitempty"`
}

// sessionCodecVersion is the V of every record written.
const sessionCodecVersion = 1

// EncodeSession returns the stored form of s.
func EncodeSession(s Session) ([]byte, error) {
	b, err := json.Marshal(sessionRecord{
		V: sessionCodecVersion, ID: s.ID, Owner: s.Owner, User: s.Username, Lis: s.Listener,
		Proto: s.ProtocolVersion, Expiry: int64(s.ExpiryInterval / time.Second), Expires: s.Expires,
		Node: s.Node, Subs: s.Subscriptions,
	})
	if err != nil {
		return nil, fmt.Errorf("encode session %q: %w", s.ID, err)
	}
	return b, nil
}

// DecodeSession parses what EncodeSession wrote.
func DecodeSession(b []byte) (Session, error) {
	var r sessionRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Session{}, fmt.Errorf("decode session: %w", err)
	}
	if r.V != sessionCodecVersion || r.ID == "" || r.Expiry < 0 || r.Expiry > math.MaxUint32 || r.Expires < 0 {
		return Session{}, fmt.Errorf("decode session: unsupported or invalid record (version %d, id %q)", r.V, r.ID)
	}
	if len(r.Subs) == 0 {
		r.Subs = nil
	}
	return Session{
		ID: r.ID, Owner: r.Owner, Username: r.User, Listener: r.Lis, ProtocolVersion: r.Proto,
		ExpiryInterval: time.Duration(r.Expiry) * time.Second, Expires: r.Expires, Node: r.Node, Subscriptions: r.Subs,
	}, nil
}

// Retained keeps the retained messages of opened topics, so they survive
// restarts. A message is opaque to the store: the broker encodes it.
type Retained interface {
	// PutRetained stores msg as topic's retained message, durably.
	PutRetained(ctx context.Context, topic string, msg []byte) error
	// DeleteRetained removes topic's retained message, durably.
	DeleteRetained(ctx context.Context, topic string) error
	// RetainedMessages returns every retained message by topic.
	RetainedMessages(ctx context.Context) (map[string][]byte, error)
}
