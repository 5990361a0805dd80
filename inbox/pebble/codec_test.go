package pebblestore

import (
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		id   uint64
		msg  inbox.Message
	}{
		{"zero", 0, inbox.Message{}},
		{"full", 1234567890123456789, inbox.Message{
			Time: 1735689600000, Kind: inbox.KindDirect, Peer: "bob", Nickname: "Bob 🐙", Avatar: "a.png",
			Content: "héllo", Extra: "{}", CID: "c1", MsgType: -7, Event: "ev", Ref: "42",
		}},
		{"extremes", math.MaxUint64, inbox.Message{Time: math.MinInt64, Kind: 255, MsgType: math.MaxInt64}},
		{"negative time", 1, inbox.Message{Time: -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendMessage(nil, tt.id, &tt.msg)
			var got inbox.Message
			if err := decodeMessage(b, &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tt.msg
			want.ID = strconv.FormatUint(tt.id, 10)
			if got != want {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
			meta, err := decodeMeta(b)
			if err != nil || meta.time != tt.msg.Time || meta.kind != tt.msg.Kind || string(meta.peer) != tt.msg.Peer {
				t.Errorf("decodeMeta = %d, %d, %q, %v, want %d, %d, %q", meta.time, meta.kind, meta.peer, err, tt.msg.Time, tt.msg.Kind, tt.msg.Peer)
			}
		})
	}
}

func TestCodecCorrupt(t *testing.T) {
	valid := appendMessage(nil, 99, &inbox.Message{Time: 5, Kind: inbox.KindDirect, Content: "hello", Ref: "r"})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"string past end", []byte{varcodec.Version1, 1, 2, 1, 10, 'a'}},
		{"varint too long", []byte{varcodec.Version1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
	}
	for i := 1; i < len(valid); i++ {
		tests = append(tests, struct {
			name string
			b    []byte
		}{"truncated at " + strconv.Itoa(i), valid[:i]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var m inbox.Message
			if err := decodeMessage(tt.b, &m); !errors.Is(err, errCorrupt) {
				t.Errorf("decode = %v, want errCorrupt", err)
			}
		})
	}
}

// FuzzDecode checks that no input makes the message decoders panic, and that what
// decodes re-encodes to a value that decodes the same.
func FuzzDecode(f *testing.F) {
	f.Add(appendMessage(nil, 1, &inbox.Message{}))
	f.Add(appendMessage(nil, 1234567890123456789, &inbox.Message{
		Time: 1735689600000, Kind: inbox.KindNotice, Content: "hi", MsgType: 3, Event: "e", Ref: "r",
	}))
	f.Add([]byte{})
	f.Add([]byte{varcodec.Version1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m inbox.Message
		err := decodeMessage(b, &m)
		meta, merr := decodeMeta(b)
		if merr != nil && !errors.Is(merr, errCorrupt) {
			t.Fatalf("decodeMeta error %v does not wrap errCorrupt", merr)
		}
		if err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decode error %v does not wrap errCorrupt", err)
			}
			return
		}
		if merr != nil || meta.time != m.Time || meta.kind != m.Kind || string(meta.peer) != m.Peer {
			t.Fatalf("decodeMeta = %+v, %v; decode gave %+v", meta, merr, m)
		}
		id, perr := strconv.ParseUint(m.ID, 10, 64)
		if perr != nil {
			t.Fatalf("decoded id %q: %v", m.ID, perr)
		}
		var again inbox.Message
		if err := decodeMessage(appendMessage(nil, id, &m), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again != m {
			t.Fatalf("re-decoded %+v, want %+v", again, m)
		}
	})
}

func TestIndexValueRoundTrip(t *testing.T) {
	for _, c := range []struct {
		kind    inbox.Kind
		msgType int
	}{{inbox.KindDirect, 0}, {inbox.KindNotice, 7}, {inbox.KindNotice, -3}, {inbox.KindNotice, math.MaxInt64}, {255, math.MinInt64}} {
		kind, msgType, err := decodeIndexValue(appendIndexValue(nil, c.kind, c.msgType))
		if err != nil || kind != c.kind || msgType != c.msgType {
			t.Errorf("index value %d, %d decoded as %d, %d, %v", c.kind, c.msgType, kind, msgType, err)
		}
	}
	for _, b := range [][]byte{nil, {1}, {1, 0, 0}, {1, 0xff}} {
		if _, _, err := decodeIndexValue(b); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeIndexValue(%x) = %v, want errCorrupt", b, err)
		}
	}
}

func TestHeadRoundTrip(t *testing.T) {
	for _, h := range []head{{first: 1}, {first: 1, last: 5, held: 5}, {first: 3, last: 9, held: 2}, {first: 10, last: 9}} {
		got, err := decodeHead(encodeHead(h))
		if err != nil || got != h {
			t.Errorf("head %+v decoded as %+v, %v", h, got, err)
		}
	}
	for _, h := range []head{{first: 0}, {first: 3, last: 1}, {first: 1, last: 5, held: 6}, {first: 1, last: 5}, {first: 6, last: 5, held: 1}} {
		if _, err := decodeHead(encodeHead(h)); !errors.Is(err, errCorrupt) {
			t.Errorf("decodeHead of inconsistent %+v = %v, want errCorrupt", h, err)
		}
	}
	if _, err := decodeHead(make([]byte, 8)); !errors.Is(err, errCorrupt) {
		t.Errorf("decodeHead of a layout 1 head = %v, want errCorrupt", err)
	}
}
