package varcodec

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

var errTest = errors.New("corrupt")

func TestRoundTrip(t *testing.T) {
	b := []byte{7}
	b = binary.AppendUvarint(b, math.MaxUint64)
	b = binary.AppendVarint(b, math.MinInt64)
	b = binary.AppendVarint(b, -42)
	b = AppendString(b, "你好")
	b = AppendString(b, "")
	d := Decoder{S: string(b), Corrupt: errTest}
	if d.Byte() != 7 || d.Uvarint() != math.MaxUint64 || d.Varint() != math.MinInt64 || d.Int() != -42 ||
		d.String() != "你好" || d.String() != "" || d.Err != nil || d.S != "" {
		t.Fatalf("round trip failed: %v", d.Err)
	}
}

func TestCorrupt(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		read func(*Decoder)
	}{
		{"empty byte", "", func(d *Decoder) { d.Byte() }},
		{"truncated varint", "\x80", func(d *Decoder) { d.Uvarint() }},
		{"overlong varint", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02", func(d *Decoder) { d.Uvarint() }},
		{"string longer than input", "\x05ab", func(d *Decoder) { _ = d.String() }},
		{"string length unreadable", "", func(d *Decoder) { _ = d.String() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := Decoder{S: tc.in, Corrupt: errTest}
			tc.read(&d)
			if !errors.Is(d.Err, errTest) {
				t.Fatalf("err = %v, want it to wrap the sentinel", d.Err)
			}
			if d.Byte() != 0 || d.String() != "" { // reads after an error return zero
				t.Fatal("read after error returned data")
			}
		})
	}
}

// Edited is optional at the end: an unedited message encodes as before
// Edited existed, and such an encoding decodes as never edited.
func TestContentEdited(t *testing.T) {
	base := inbox.Message{Nickname: "n", Avatar: "a", Content: "old", Extra: "e", CID: "c", MsgType: -3, Event: "ev", Ref: "r"}
	for _, tt := range []struct {
		name   string
		edited int64
	}{
		{"never edited", 0},
		{"edited", 1764950400123},
		{"edited before 1970 still round-trips", -5},
	} {
		t.Run(tt.name, func(t *testing.T) {
			m := base
			m.Edited = tt.edited
			b := AppendContent(nil, &m)
			unedited := AppendContent(nil, &base)
			if (tt.edited == 0) != (string(b) == string(unedited)) {
				t.Fatalf("encoding %x, unedited %x", b, unedited)
			}
			var got inbox.Message
			d := Decoder{S: string(b), Corrupt: errTest}
			d.DecodeContent(&got)
			if d.Err != nil || d.S != "" || got != m {
				t.Fatalf("decoded %+v (err %v, %d bytes left), want %+v", got, d.Err, len(d.S), m)
			}
		})
	}
	// A corrupt Edited is an error, not a silent 0; a stray byte is left
	// for the caller's trailing-bytes check.
	plain := string(AppendContent(nil, &base))
	for _, tail := range []string{"e", "e\x80", "e\x00"} {
		d := Decoder{S: plain + tail, Corrupt: errTest}
		var got inbox.Message
		d.DecodeContent(&got)
		if !errors.Is(d.Err, errTest) {
			t.Fatalf("Edited %q: err = %v", tail, d.Err)
		}
	}
	d := Decoder{S: plain + "\x00", Corrupt: errTest}
	var got inbox.Message
	d.DecodeContent(&got)
	if d.Err != nil || d.S != "\x00" || got.Edited != 0 {
		t.Fatalf("stray byte: err %v, left %q, edited %d", d.Err, d.S, got.Edited)
	}
}
