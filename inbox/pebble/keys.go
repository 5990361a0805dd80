package pebblestore

import (
	"bytes"
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
	prefixMark    = 'r'
	prefixIndex   = 't'
	sep           = 0x00
)

var (
	keyLastID  = []byte("i")
	keyVersion = []byte("v")

	// The whole message keyspace, for ExpireBefore's sweep.
	msgSpaceStart = []byte{prefixMessage}
	msgSpaceEnd   = []byte{prefixMessage + 1}
)

// layoutVersion is stored under keyVersion. Open upgrades a store of
// version 1 (no thread index, no held count), 2 (a head written with
// every append) or 3 (request records with an age index) and refuses any
// other.
const layoutVersion = 4

var (
	errBadUID  = errors.New("uid must be non-empty and must not contain a 0x00 byte")
	errBadPeer = errors.New("peer of a direct or sent message must not contain a 0x00 byte")
)

func checkUID(uid string) error {
	if uid == "" || strings.IndexByte(uid, sep) >= 0 {
		return fmt.Errorf("uid %q: %w", uid, errBadUID)
	}
	return nil
}

// checkThread rejects a thread name that cannot be put in the thread
// index: a 0x00 inside it would let one thread's keys fall among another's.
// Peers are uids, so a valid message never has one.
func checkThread(thread string) error {
	if strings.IndexByte(thread, sep) >= 0 {
		return fmt.Errorf("thread %q: %w", thread, errBadPeer)
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

// appendIndexUID appends the prefix of every thread index key of uid.
func appendIndexUID(dst []byte, uid string) []byte {
	dst = append(dst, prefixIndex)
	dst = append(dst, uid...)
	return append(dst, sep)
}

// appendIndexEnd appends the first key after uid's thread index.
func appendIndexEnd(dst []byte, uid string) []byte {
	dst = append(dst, prefixIndex)
	dst = append(dst, uid...)
	return append(dst, sep+1)
}

// appendIndexThread appends the prefix of the index keys of one thread.
func appendIndexThread(dst []byte, uid, thread string) []byte {
	dst = appendIndexUID(dst, uid)
	dst = append(dst, thread...)
	return append(dst, sep)
}

// appendIndexThreadEnd appends the first key after one thread's index
// keys; threads hold no 0x00, so no other thread's keys fall between.
func appendIndexThreadEnd(dst []byte, uid, thread string) []byte {
	dst = appendIndexUID(dst, uid)
	dst = append(dst, thread...)
	return append(dst, sep+1)
}

// appendIndexKey appends the thread index key of message seq of uid.
func appendIndexKey(dst []byte, uid, thread string, seq uint64) []byte {
	return binary.BigEndian.AppendUint64(appendIndexThread(dst, uid, thread), seq)
}

// parseIndexKey splits an index key, whose first uidLen bytes are the
// uid's index prefix (appendIndexUID), into thread and seq.
func parseIndexKey(key []byte, uidLen int) (thread []byte, seq uint64, err error) {
	if len(key) < uidLen+1+8 || key[len(key)-9] != sep {
		return nil, 0, fmt.Errorf("malformed thread index key %q", key)
	}
	thread = key[uidLen : len(key)-9]
	if bytes.IndexByte(thread, sep) >= 0 {
		return nil, 0, fmt.Errorf("malformed thread index key %q", key)
	}
	return thread, binary.BigEndian.Uint64(key[len(key)-8:]), nil
}

// appendMarkUID appends the prefix of every read mark key of uid.
func appendMarkUID(dst []byte, uid string) []byte {
	dst = append(dst, prefixMark)
	dst = append(dst, uid...)
	return append(dst, sep)
}

// markKey is the key of uid's read mark of thread. Marks accept any thread
// name, 0x00 included, so the thread is last.
func markKey(uid, thread string) []byte {
	k := make([]byte, 0, 2+len(uid)+len(thread))
	k = appendMarkUID(k, uid)
	return append(k, thread...)
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
