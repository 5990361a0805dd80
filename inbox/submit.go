package inbox

import (
	"context"
	"errors"
	"time"
)

// Submitter appends a request together with what must be stored in the
// same atomic step: the record that makes a resend harmless, and the push
// schedule of its incoming entries. Append is Submit without either.
type Submitter interface {
	// Submit appends req.Msgs like Append, and in the same atomic write
	// records req.Key (when set) and puts the push entries on the schedule
	// (when req.PushAfter > 0). When a request with the same Key and Sum
	// was stored within the dedupe window, nothing is written and the
	// receipt returns the original entries' ID, Time and Seq, with
	// Duplicate set.
	//
	// An error wrapping ErrNotStored means nothing was written. Any other
	// error leaves the outcome unknown (a timeout after the write was
	// sent): a resend with the same Key then finds the request if it was
	// stored.
	Submit(ctx context.Context, req Request) (Receipt, error)
}

// Request is one logical message for Submit.
type Request struct {
	Msgs []Message
	// Key names the request for de-duplication, in the inbox of Msgs[0]
	// (the recipient of a direct message): the caller builds it from who
	// sent it and the client's id for it. Empty: no de-duplication. At
	// most MaxRequestKey bytes.
	Key string
	// Sum identifies what the request asked (recipient and content): a
	// request with a known Key but another Sum is a new request.
	Sum [32]byte
	// PushAfter, when positive, schedules a push check for every incoming
	// entry (Message.Incoming) of a user's inbox (not one starting with
	// '$'), due PushAfter after its append time.
	PushAfter time.Duration
	// RefuseIfBlocked, when not empty, is a uid (the sender of a direct
	// message): if the block list of Msgs[0].UID holds it, Submit writes
	// nothing and returns an error wrapping ErrBlocked and ErrNotStored.
	// The check comes before the dedupe lookup, so a resend is refused
	// like a new request. Only a store that implements BlockingSubmitter
	// honours it; the caller checks IsBlocked itself otherwise.
	RefuseIfBlocked string
}

// BlockingSubmitter is a Submitter that honours Request.RefuseIfBlocked in
// the same atomic step as the write, so that a direct message costs no
// separate block list read (on Redis, no round trip of its own). Callers
// find it by type assertion.
type BlockingSubmitter interface {
	Submitter
	// SubmitChecksBlocks reports that Submit honours RefuseIfBlocked.
	SubmitChecksBlocks() bool
}

// ErrBlocked is returned by Submit when the recipient's block list holds
// Request.RefuseIfBlocked.
var ErrBlocked = errors.New("the recipient blocked the sender")

// Receipt is what Submit stored, or found stored.
type Receipt struct {
	// Msgs are the request's entries with ID, Time and Seq set: the new
	// ones, or on a duplicate the original ones.
	Msgs []Message
	// Duplicate reports that the request was found stored and nothing was
	// written.
	Duplicate bool
}

// MaxRequestKey is the longest Request.Key, in bytes: a uid (64), a
// separator and a client id (128), with room to spare.
const MaxRequestKey = 256

// DefaultDedupeWindow and DefaultDedupePerInbox are Options.DedupeWindow
// and Options.DedupePerInbox when 0.
const (
	DefaultDedupeWindow   = 10 * time.Minute
	DefaultDedupePerInbox = 1000
)

// ErrNotStored marks a failure after which the store certainly holds
// nothing of the request: the client may be told so, and may resend.
var ErrNotStored = errors.New("not stored")

// ErrPartial marks a Submit that stored the request in the inbox of its
// first entry (a resend finds it, the recipient gets it) but failed to
// write some of the rest: another inbox's entry or the push schedule. Only
// a store that cannot write all of them atomically (Redis Cluster) returns
// it, with the receipt: the entries it did not store have Seq 0.
var ErrPartial = errors.New("stored in part")

// ErrBadRequestKey is returned for a Request.Key over MaxRequestKey bytes.
var ErrBadRequestKey = errors.New("request key too long")

// PushEntries returns the push schedule entries of stored entries for a
// request with PushAfter d: one per incoming entry of a user's inbox.
func PushEntries(stored []Message, d time.Duration) []PushEntry {
	if d <= 0 {
		return nil
	}
	var out []PushEntry
	for _, m := range stored {
		if NeedsPush(m) {
			out = append(out, PushEntry{UID: m.UID, Seq: m.Seq, Due: time.UnixMilli(m.Time).Add(d)})
		}
	}
	return out
}

// NeedsPush reports whether m gets a push check: an incoming entry of a
// user's inbox (the broadcast log and other '$' inboxes are nobody's).
func NeedsPush(m Message) bool {
	return m.Incoming() && (m.UID == "" || m.UID[0] != '$')
}
