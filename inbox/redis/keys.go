package redisstore

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Suffixes of an inbox's keys after its base ("<prefix>im:{<uid>}:"); see
// the layout in doc.go. The Lua scripts build the same names from the base,
// so the two lists must agree.
const (
	sufMeta    = "h"  // HASH: s = highest Seq, i = last id, n = messages held, a = last append result, dn/dx = request records, P = pending th entries, L = lock mark, b = block list mark
	sufLog     = "m"  // ZSET: seq -> encoded message
	sufTimes   = "tm" // ZSET: member seq, score append time (ms); written by layout 1 appends only, cleared by the sweep
	sufThreads = "th" // ZSET: member thread, score its newest Seq
	sufThread  = "t:" // + thread: ZSET of the thread's Seqs that are not incoming (older inboxes: all)
	sufIncome  = "u:" // + thread: ZSET of the thread's incoming Seqs
	sufCursors = "c"  // HASH: device -> cursor Seq (layout 1; now read only, see keys.cursors)
	sufMarks   = "r"  // HASH: thread -> read mark Seq
	sufLock    = "lk" // STRING: append lock token, with a TTL
	sufBlocks  = "bl" // SET: uids whose direct messages the owner refuses

	sufRequests = "dd" // HASH: request key -> record (see scripts.go, keep_requests)
)

// globalTag is the hash tag of the keys that are not per inbox. They all
// live in the one Cluster slot that tag hashes to.
const globalTag = "{$global}"

// layoutVersion is stored under the layout key; Open refuses any other.
const layoutVersion = "1"

var (
	errBadUID    = errors.New("uid must not be empty")
	errBadPrefix = errors.New("prefix must not contain '{' or '}': they would change the hash tag")
)

func checkUID(uid string) error {
	if uid == "" {
		return errBadUID
	}
	return nil
}

func checkPrefix(p string) error {
	if strings.ContainsAny(p, "{}") {
		return fmt.Errorf("prefix %q: %w", p, errBadPrefix)
	}
	return nil
}

// keys names the keys of one store.
type keys struct {
	prefix string
}

// base returns the common start of every key of uid's inbox. The uid is
// the hash tag, so all of an inbox's keys share one Cluster slot. Braces
// and '%' in a uid are percent-escaped: an unescaped '}' would end the tag
// early, and a uid starting with '}' would give an empty tag, which Redis
// ignores, scattering the inbox over slots.
func (k keys) base(uid string) string {
	var b strings.Builder
	b.Grow(len(k.prefix) + len(uid) + 6)
	b.WriteString(k.prefix)
	b.WriteString("im:{")
	for i := 0; i < len(uid); i++ {
		switch c := uid[i]; c {
		case '{':
			b.WriteString("%7B")
		case '}':
			b.WriteString("%7D")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	b.WriteString("}:")
	return b.String()
}

// oldest is the sweep index: a ZSET of uids scored by (about) the append
// time of their oldest message. It is the one key ExpireBefore starts from.
func (k keys) oldest() string { return k.prefix + globalTag + ":oldest" }

// cursors is the global cursor index: a ZSET of devices (cursorMember)
// scored by their cursor Seq, so that ZADD GT moves a cursor forward only,
// and one command writes the cursors of many devices of many inboxes.
func (k keys) cursors() string { return k.prefix + globalTag + ":cur" }

// cursorMember names uid's device in the cursor index: the uid's length
// first, so that no uid and device pair reads as another.
func cursorMember(uid, device string) string {
	return strconv.Itoa(len(uid)) + ":" + uid + device
}

// layout holds layoutVersion.
func (k keys) layout() string { return k.prefix + globalTag + ":layout" }
