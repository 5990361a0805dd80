package pebblestore

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
)

var errCorrupt = errors.New("corrupt message value")

// appendMessage appends the encoding of m, with id in place of m.ID, to
// dst. UID and Seq are in the key and not encoded.
func appendMessage(dst []byte, id uint64, m *inbox.Message) []byte {
	dst = append(dst, varcodec.Version1)
	dst = binary.AppendUvarint(dst, id)
	dst = binary.AppendVarint(dst, m.Time)
	dst = append(dst, byte(m.Kind))
	dst = varcodec.AppendString(dst, m.Peer)
	return varcodec.AppendContent(dst, m)
}

// decodeMessage fills every field of m but UID and Seq from an encoding.
// Corrupt input returns an error wrapping errCorrupt, never panics.
func decodeMessage(b []byte, m *inbox.Message) error {
	// One string for the whole value: every string field is a slice of it,
	// so decoding costs one allocation however many fields are set.
	d := varcodec.Decoder{S: string(b), Corrupt: errCorrupt}
	if v := d.Byte(); v != varcodec.Version1 {
		if d.Err != nil {
			return d.Err
		}
		return fmt.Errorf("%w: unknown version %d", errCorrupt, v)
	}
	id := d.Uvarint()
	m.ID = strconv.FormatUint(id, 10)
	m.Time = d.Varint()
	m.Kind = inbox.Kind(d.Byte())
	m.Peer = d.String()
	d.DecodeContent(m)
	if d.Err == nil && len(d.S) != 0 {
		d.Fail("%d trailing bytes", len(d.S))
	}
	return d.Err
}

// msgMeta is the leading part of an encoded message: what the expiry
// sweep and retention need (its time, and its thread to find the index
// entry) without decoding, or copying, the whole value.
type msgMeta struct {
	time int64
	kind inbox.Kind
	peer []byte // aliases the encoded value
}

// thread is the thread of the message, as inbox.Message.Thread, except
// that a peer with a 0x00 byte puts it in no thread: Append refuses such
// peers, but layout 1 took them, and the index cannot hold them.
func (m msgMeta) thread() string {
	if bytes.IndexByte(m.peer, sep) >= 0 {
		return ""
	}
	return inbox.Message{Kind: m.kind, Peer: string(m.peer)}.Thread()
}

// decodeMeta decodes the fields of msgMeta from an encoded message.
// Corrupt input returns an error wrapping errCorrupt, never panics.
func decodeMeta(b []byte) (msgMeta, error) {
	if len(b) == 0 || b[0] != varcodec.Version1 {
		return msgMeta{}, fmt.Errorf("%w: missing or unknown version", errCorrupt)
	}
	b = b[1:]
	_, n := binary.Uvarint(b)
	if n <= 0 {
		return msgMeta{}, fmt.Errorf("%w: bad id", errCorrupt)
	}
	b = b[n:]
	t, n := binary.Varint(b)
	if n <= 0 {
		return msgMeta{}, fmt.Errorf("%w: bad time", errCorrupt)
	}
	b = b[n:]
	if len(b) == 0 {
		return msgMeta{}, fmt.Errorf("%w: truncated before kind", errCorrupt)
	}
	m := msgMeta{time: t, kind: inbox.Kind(b[0])}
	b = b[1:]
	l, n := binary.Uvarint(b)
	if n <= 0 || l > uint64(len(b)-n) {
		return msgMeta{}, fmt.Errorf("%w: bad peer", errCorrupt)
	}
	m.peer = b[n : n+int(l)]
	return m, nil
}

// appendIndexValue appends the value of a thread index entry: what Unread
// needs to count the entry without reading the message.
func appendIndexValue(dst []byte, kind inbox.Kind, msgType int) []byte {
	dst = append(dst, byte(kind))
	return binary.AppendVarint(dst, int64(msgType))
}

// decodeIndexValue decodes a thread index value.
func decodeIndexValue(b []byte) (kind inbox.Kind, msgType int, err error) {
	if len(b) < 2 {
		return 0, 0, fmt.Errorf("%w: thread index value of %d bytes", errCorrupt, len(b))
	}
	v, n := binary.Varint(b[1:])
	if n <= 0 || 1+n != len(b) || int64(int(v)) != v {
		return 0, 0, fmt.Errorf("%w: bad thread index value %x", errCorrupt, b)
	}
	return inbox.Kind(b[0]), int(v), nil
}

// headLen is the size of an encoded head: last, first, held.
const headLen = 3 * 8

func encodeHead(h head) []byte {
	b := make([]byte, 0, headLen)
	b = binary.BigEndian.AppendUint64(b, h.last)
	b = binary.BigEndian.AppendUint64(b, h.first)
	return binary.BigEndian.AppendUint64(b, h.held)
}

func decodeHead(b []byte) (head, error) {
	if len(b) != headLen {
		return head{}, fmt.Errorf("%w: head of %d bytes, want %d", errCorrupt, len(b), headLen)
	}
	h := head{
		last:  binary.BigEndian.Uint64(b),
		first: binary.BigEndian.Uint64(b[8:]),
		held:  binary.BigEndian.Uint64(b[16:]),
	}
	if h.first == 0 || h.first > h.last+1 || h.held > h.last+1-h.first || (h.held == 0) != (h.first == h.last+1) {
		return head{}, fmt.Errorf("%w: head first %d last %d held %d", errCorrupt, h.first, h.last, h.held)
	}
	return h, nil
}
