package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
)

var errCorrupt = errors.New("corrupt message value")

// appendBody appends the part of m's encoding the client builds, with id
// in place of m.ID: everything after the Seq, which only the append script
// knows. Kind and Peer come first so that the scripts find a message's
// thread without decoding the rest.
func appendBody(dst []byte, id uint64, m *inbox.Message) []byte {
	dst = append(dst, byte(m.Kind))
	dst = varcodec.AppendString(dst, m.Peer)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendVarint(dst, m.Time)
	return varcodec.AppendContent(dst, m)
}

// appendMember appends the whole stored encoding of m: what the append
// script stores for seq and a body from appendBody. Append never builds a
// member in Go (its script does); Edit and the tests do.
func appendMember(dst []byte, seq, id uint64, m *inbox.Message) []byte {
	dst = append(dst, varcodec.Version1)
	dst = binary.AppendUvarint(dst, seq)
	return appendBody(dst, id, m)
}

// decodeMember fills every field of m but UID from a stored encoding.
// Corrupt input returns an error wrapping errCorrupt, never panics. Every
// string field is a slice of s: go-redis hands members over as strings, so
// decoding allocates nothing but the id's digits.
func decodeMember(s string, m *inbox.Message) error {
	d := varcodec.Decoder{S: s, Corrupt: errCorrupt}
	if v := d.Byte(); v != varcodec.Version1 {
		if d.Err != nil {
			return d.Err
		}
		return fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	m.Seq = d.Uvarint()
	m.Kind = inbox.Kind(d.Byte())
	m.Peer = d.String()
	m.ID = strconv.FormatUint(d.Uvarint(), 10)
	m.Time = d.Varint()
	d.DecodeContent(m)
	if d.Err == nil && len(d.S) != 0 {
		d.Fail("%d trailing bytes", len(d.S))
	}
	return d.Err
}
