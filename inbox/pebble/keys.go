package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
)

// Key prefixes; see the layout in doc.go.
const (
	prefixCursor  = 'c'
	prefixHead    = 'h'
	prefixMessage = 'm'
	sep           = 0x00
)

var (
	keyLastID  = []byte("i")
	keyVersion = []byte("v")

	// The whole message keyspace, for ExpireBefore's sweep.
	msgSpaceStart = []byte{prefixMessage}
	msgSpaceEnd   = []byte{prefixMessage + 1}
)

// layoutVersion is stored under keyVersion; Open refuses any other.
const layoutVersion = 1

var errBadUID = errors.New("uid must be non-empty and must not contain a 0x00 byte")

func checkUID(uid string) error {
	if uid == "" || strings.IndexByte(uid, sep) >= 0 {
		return fmt.Errorf("uid %q: %w", uid, errBadUID)
	}
	return nil
}

// appendMsgKey appends the key of message seq of uid to dst.
func appendMsgKey(dst []byte, uid string, seq uint64) []byte {
	dst = append(dst, prefixMessage)
	dst = append(dst, uid...)
	dst = append(dst, sep)
	return binary.BigEndian.AppendUint64(dst, seq)
}

// appendMsgEnd appends the first key after every message key of uid: the
// separator is bumped by one, and uids hold no 0x00, so no other uid's keys
// fall between.
func appendMsgEnd(dst []byte, uid string) []byte {
	dst = append(dst, prefixMessage)
	dst = append(dst, uid...)
	return append(dst, sep+1)
}

// parseMsgKey splits a message key into uid and seq.
func parseMsgKey(key []byte) (uid []byte, seq uint64, err error) {
	if len(key) < 1+1+1+8 || key[0] != prefixMessage || key[len(key)-9] != sep {
		return nil, 0, fmt.Errorf("malformed message key %q", key)
	}
	return key[1 : len(key)-9], binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

func headKey(uid string) []byte {
	k := make([]byte, 0, 1+len(uid))
	k = append(k, prefixHead)
	return append(k, uid...)
}

func cursorKey(uid, device string) []byte {
	k := make([]byte, 0, 2+len(uid)+len(device))
	k = append(k, prefixCursor)
	k = append(k, uid...)
	k = append(k, sep)
	return append(k, device...)
}

func encodeUint(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func decodeUint(what string, b []byte) (uint64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("%s: corrupt value of %d bytes, want 8", what, len(b))
	}
	return binary.BigEndian.Uint64(b), nil
}
