package redisstore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/inboxmq/inboxmq/inbox"
)

// codecV1 is the version byte of the message encoding described in doc.go.
// The append script writes it, so it is also in scripts.go.
const codecV1 = 1

var errCorrupt = errors.New("corrupt message value")

// appendBody appends the part of m's encoding the client builds, with id
// in place of m.ID: everything after the Seq, which only the append script
// knows. Kind and Peer come first so that the scripts find a message's
// thread without decoding the rest.
func appendBody(dst []byte, id uint64, m *inbox.Message) []byte {
	dst = append(dst, byte(m.Kind))
	dst = appendString(dst, m.Peer)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendVarint(dst, m.Time)
	dst = appendString(dst, m.Nickname)
	dst = appendString(dst, m.Avatar)
	dst = appendString(dst, m.Content)
	dst = appendString(dst, m.Extra)
	dst = appendString(dst, m.CID)
	dst = binary.AppendVarint(dst, int64(m.MsgType))
	dst = appendString(dst, m.Event)
	return appendString(dst, m.Ref)
}

// appendMember appends the whole stored encoding of m: what the append
// script stores for seq and a body from appendBody. Tests use it; the
// store itself never builds a member in Go.
func appendMember(dst []byte, seq, id uint64, m *inbox.Message) []byte {
	dst = append(dst, codecV1)
	dst = binary.AppendUvarint(dst, seq)
	return appendBody(dst, id, m)
}

func appendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// decodeMember fills every field of m but UID from a stored encoding.
// Corrupt input returns an error wrapping errCorrupt, never panics. Every
// string field is a slice of s: go-redis hands members over as strings, so
// decoding allocates nothing but the id's digits.
func decodeMember(s string, m *inbox.Message) error {
	d := decoder{s: s}
	if v := d.byte(); v != codecV1 {
		if d.err != nil {
			return d.err
		}
		return fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	m.Seq = d.uvarint()
	m.Kind = inbox.Kind(d.byte())
	m.Peer = d.string()
	m.ID = strconv.FormatUint(d.uvarint(), 10)
	m.Time = d.varint()
	m.Nickname = d.string()
	m.Avatar = d.string()
	m.Content = d.string()
	m.Extra = d.string()
	m.CID = d.string()
	m.MsgType = d.int()
	m.Event = d.string()
	m.Ref = d.string()
	if d.err == nil && len(d.s) != 0 {
		d.fail("%d trailing bytes", len(d.s))
	}
	return d.err
}

// decoder reads from s; after the first error every read returns zero.
type decoder struct {
	s   string
	err error
}

func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{errCorrupt}, args...)...)
	}
	d.s = ""
}

func (d *decoder) byte() byte {
	if len(d.s) == 0 {
		d.fail("truncated")
		return 0
	}
	c := d.s[0]
	d.s = d.s[1:]
	return c
}

// uvarint mirrors binary.Uvarint on a string, to avoid converting back.
func (d *decoder) uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < len(d.s); i++ {
		if i == binary.MaxVarintLen64 {
			break
		}
		c := d.s[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.s = d.s[i+1:]
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.fail("bad varint")
	return 0
}

func (d *decoder) varint() int64 {
	ux := d.uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

func (d *decoder) int() int {
	v := d.varint()
	if int64(int(v)) != v {
		d.fail("int %d out of range", v)
		return 0
	}
	return int(v)
}

func (d *decoder) string() string {
	n := d.uvarint()
	if d.err != nil {
		return ""
	}
	if n > uint64(len(d.s)) {
		d.fail("string of %d bytes, %d left", n, len(d.s))
		return ""
	}
	s := d.s[:n]
	d.s = d.s[n:]
	return s
}
