package varcodec

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"
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
