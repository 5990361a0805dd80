package redisstore

import (
	"context"
	"errors"
	"math"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/inbox/internal/varcodec"
)

func TestCodecRoundTrip(t *testing.T) {
	tests := []struct {
		name     string
		seq, id  uint64
		msg      inbox.Message
		wantSize int // 0: not checked
	}{
		// Version, then a byte for each of the 13 fields: every varint,
		// length and the kind fit in one.
		{"zero", 0, 0, inbox.Message{}, 14},
		{"full", 77, 1234567890123456789, inbox.Message{
			Time: 1735689600000, Kind: inbox.KindDirect, Peer: "bob", Nickname: "Bob 🐙", Avatar: "a.png",
			Content: "héllo", Extra: "{}", CID: "c1", MsgType: -7, Event: "ev", Ref: "42",
		}, 0},
		{"extremes", math.MaxUint64, math.MaxUint64, inbox.Message{Time: math.MinInt64, Kind: 255, MsgType: math.MaxInt64}, 0},
		{"negative time", 1, 1, inbox.Message{Time: -1}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := appendMember(nil, tt.seq, tt.id, &tt.msg)
			if tt.wantSize != 0 && len(b) != tt.wantSize {
				t.Errorf("encoding is %d bytes, want %d", len(b), tt.wantSize)
			}
			var got inbox.Message
			if err := decodeMember(string(b), &got); err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := tt.msg
			want.Seq, want.ID = tt.seq, strconv.FormatUint(tt.id, 10)
			if got != want {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
}

func TestCodecCorrupt(t *testing.T) {
	valid := appendMember(nil, 3, 99, &inbox.Message{Time: 5, Kind: inbox.KindDirect, Peer: "p", Content: "hello", Ref: "r"})
	tests := []struct {
		name string
		b    []byte
	}{
		{"empty", nil},
		{"unknown version", append([]byte{2}, valid[1:]...)},
		{"trailing byte", append(append([]byte(nil), valid...), 0)},
		{"string past end", []byte{varcodec.Version1, 1, 1, 10, 'a'}},
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
			if err := decodeMember(string(tt.b), &m); !errors.Is(err, errCorrupt) {
				t.Errorf("decode = %v, want errCorrupt", err)
			}
		})
	}
}

// TestScriptEncoding checks that the append script writes, around the
// body, exactly what appendMember describes, also for a Seq whose uvarint
// takes many bytes.
func TestScriptEncoding(t *testing.T) {
	c := sharedServer(t).Client(t)
	s := openStore(t, c, newPrefix(), inbox.Options{})
	ctx := context.Background()
	base := s.k.base("alice")
	for _, head := range []uint64{0, 126, 127, 16383, 1 << 40, 1<<53 - 2} {
		if err := c.HSet(ctx, base+sufMeta, "s", head).Err(); err != nil {
			t.Fatal(err)
		}
		in := inbox.Message{UID: "alice", Kind: inbox.KindNotice, MsgType: -9, Content: "c", Event: "e"}
		got, err := s.Append(ctx, []inbox.Message{in})
		if err != nil {
			t.Fatalf("Append after head %d: %v", head, err)
		}
		id, err := strconv.ParseUint(got[0].ID, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		in.Seq, in.Time = head+1, got[0].Time
		want := string(appendMember(nil, head+1, id, &in))
		seq := strconv.FormatUint(head+1, 10)
		stored, err := c.ZRangeByScore(ctx, base+sufLog, &redis.ZRangeBy{Min: seq, Max: seq}).Result()
		if err != nil || len(stored) != 1 {
			t.Fatalf("stored member of Seq %d: %q, %v", head+1, stored, err)
		}
		if stored[0] != want {
			t.Errorf("Seq %d stored as %x, want %x", head+1, stored[0], want)
		}
		if got[0].Seq != head+1 {
			t.Errorf("Append returned Seq %d, want %d", got[0].Seq, head+1)
		}
	}
}

// FuzzDecode checks that no input makes the decoder panic, and that what
// decodes re-encodes to a value that decodes the same. Seeds are in
// testdata/fuzz/FuzzDecode.
func FuzzDecode(f *testing.F) {
	f.Add(appendMember(nil, 1, 1, &inbox.Message{}))
	f.Add(appendMember(nil, 300, 1234567890123456789, &inbox.Message{
		Time: 1735689600000, Kind: inbox.KindNotice, Content: "hi", MsgType: 3, Event: "e", Ref: "r",
	}))
	f.Add([]byte{})
	f.Add([]byte{varcodec.Version1})
	f.Fuzz(func(t *testing.T, b []byte) {
		var m inbox.Message
		if err := decodeMember(string(b), &m); err != nil {
			if !errors.Is(err, errCorrupt) {
				t.Fatalf("decode error %v does not wrap errCorrupt", err)
			}
			return
		}
		id, err := strconv.ParseUint(m.ID, 10, 64)
		if err != nil {
			t.Fatalf("decoded id %q: %v", m.ID, err)
		}
		var again inbox.Message
		if err := decodeMember(string(appendMember(nil, m.Seq, id, &m)), &again); err != nil {
			t.Fatalf("re-decode: %v", err)
		}
		if again != m {
			t.Fatalf("re-decoded %+v, want %+v", again, m)
		}
	})
}
