// Package varcodec reads the compact encodings the inbox stores write:
// bytes, varints and length-prefixed strings, in the formats of
// encoding/binary. It is shared by the Pebble and Redis stores, whose
// message layouts differ but are built from the same parts.
package varcodec

import (
	"encoding/binary"
	"fmt"

	"github.com/inboxmq/inboxmq/inbox"
)

// Version1 is the first byte of a message value in either store: the
// version of that store's message encoding (each store's doc.go describes
// its own). A store that changes its encoding writes a new version and
// keeps reading this one.
const Version1 = 1

// Decoder reads from S. After the first error every read returns the zero
// value and Err holds the error, wrapping Corrupt; so a caller reads every
// field and checks Err once. Decoding a string allocates nothing: strings
// are slices of S.
type Decoder struct {
	S       string
	Err     error
	Corrupt error // the sentinel every error wraps
}

// Fail records an error (the first one wins) and stops further reads.
func (d *Decoder) Fail(format string, args ...any) {
	if d.Err == nil {
		d.Err = fmt.Errorf("%w: "+format, append([]any{d.Corrupt}, args...)...)
	}
	d.S = ""
}

// Byte reads one byte.
func (d *Decoder) Byte() byte {
	if len(d.S) == 0 {
		d.Fail("truncated")
		return 0
	}
	c := d.S[0]
	d.S = d.S[1:]
	return c
}

// Uvarint mirrors binary.Uvarint on a string, to avoid converting back.
func (d *Decoder) Uvarint() uint64 {
	var x uint64
	var s uint
	for i := 0; i < len(d.S); i++ {
		if i == binary.MaxVarintLen64 {
			break
		}
		c := d.S[i]
		if c < 0x80 {
			if i == binary.MaxVarintLen64-1 && c > 1 {
				break
			}
			d.S = d.S[i+1:]
			return x | uint64(c)<<s
		}
		x |= uint64(c&0x7f) << s
		s += 7
	}
	d.Fail("bad varint")
	return 0
}

// Varint reads a zig-zag varint (binary.AppendVarint).
func (d *Decoder) Varint() int64 {
	ux := d.Uvarint()
	x := int64(ux >> 1)
	if ux&1 != 0 {
		x = ^x
	}
	return x
}

// Int reads a Varint that must fit an int.
func (d *Decoder) Int() int {
	v := d.Varint()
	if int64(int(v)) != v {
		d.Fail("int %d out of range", v)
		return 0
	}
	return int(v)
}

// String reads a Uvarint length and that many bytes.
func (d *Decoder) String() string {
	n := d.Uvarint()
	if d.Err != nil {
		return ""
	}
	if n > uint64(len(d.S)) {
		d.Fail("string of %d bytes, %d left", n, len(d.S))
		return ""
	}
	s := d.S[:n]
	d.S = d.S[n:]
	return s
}

// AppendString appends s with its Uvarint length, as String reads it.
func AppendString(dst []byte, s string) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(s)))
	return append(dst, s...)
}

// AppendContent appends the fields both stores encode the same way after
// their own header: Nickname, Avatar, Content, Extra, CID, MsgType, Event,
// Ref, then, only when Edited is set, tagEdited and Edited. DecodeContent
// reads them back.
//
// Edited came later and is optional at the end, so values written before
// it existed still decode (as never edited) and an unedited message is
// encoded byte for byte as before. The tag keeps a stray trailing byte
// from passing for an edit time: that is still corruption. A binary older
// than Edited reports an edited value corrupt (trailing bytes) rather
// than misreading it.
func AppendContent(dst []byte, m *inbox.Message) []byte {
	dst = AppendString(dst, m.Nickname)
	dst = AppendString(dst, m.Avatar)
	dst = AppendString(dst, m.Content)
	dst = AppendString(dst, m.Extra)
	dst = AppendString(dst, m.CID)
	dst = binary.AppendVarint(dst, int64(m.MsgType))
	dst = AppendString(dst, m.Event)
	dst = AppendString(dst, m.Ref)
	if m.Edited != 0 {
		dst = append(dst, tagEdited)
		dst = binary.AppendVarint(dst, m.Edited)
	}
	return dst
}

// tagEdited precedes Edited in AppendContent's encoding.
const tagEdited = 'e'

// DecodeContent reads what AppendContent wrote into m.
func (d *Decoder) DecodeContent(m *inbox.Message) {
	m.Nickname = d.String()
	m.Avatar = d.String()
	m.Content = d.String()
	m.Extra = d.String()
	m.CID = d.String()
	m.MsgType = d.Int()
	m.Event = d.String()
	m.Ref = d.String()
	if d.Err == nil && len(d.S) > 0 && d.S[0] == tagEdited {
		d.S = d.S[1:]
		if m.Edited = d.Varint(); d.Err == nil && m.Edited == 0 {
			d.Fail("edit time 0 encoded")
		}
	}
}
