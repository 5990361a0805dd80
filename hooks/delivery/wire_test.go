package delivery

import (
	"bytes"
	"strings"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// appendPublish must write exactly what mochi writes for the same packet,
// and publishSize must predict its length.
func TestAppendPublish_MatchesMochi(t *testing.T) {
	for _, tc := range []struct {
		name    string
		topic   string
		pid     uint16
		qos     byte
		v5      bool
		payload int
	}{
		{"qos0 3.1.1", "inbox/10001", 0, 0, false, 10},
		{"qos1 3.1.1", "inbox/10001", 7, 1, false, 200},
		{"qos1 v5", "inbox/10001", 65535, 1, true, 200},
		{"qos0 v5 empty payload", "inbox/x", 0, 0, true, 0},
		{"remaining length of two bytes", "inbox/u", 1, 1, false, 127},
		{"remaining length of three bytes", "inbox/" + strings.Repeat("u", 64), 9, 1, true, 20000},
		{"remaining length of four bytes", "inbox/u", 2, 1, true, 2_100_000},
	} {
		t.Run(tc.name, func(t *testing.T) {
			payload := bytes.Repeat([]byte{'p'}, tc.payload)
			pk := packets.Packet{
				FixedHeader:     packets.FixedHeader{Type: packets.Publish, Qos: tc.qos},
				TopicName:       tc.topic,
				PacketID:        tc.pid,
				Payload:         payload,
				ProtocolVersion: 4,
			}
			if tc.v5 {
				pk.ProtocolVersion = 5
			}
			var want bytes.Buffer
			if err := pk.PublishEncode(&want); err != nil {
				t.Fatal(err)
			}
			got := appendPublish([]byte("keep"), tc.topic, tc.pid, tc.qos, tc.v5, payload)
			if !bytes.HasPrefix(got, []byte("keep")) {
				t.Fatal("appendPublish overwrote dst")
			}
			if !bytes.Equal(got[4:], want.Bytes()) {
				t.Fatalf("bytes differ from mochi's\n got %x\nwant %x", head(got[4:]), head(want.Bytes()))
			}
			if n := publishSize(tc.topic, tc.qos, tc.v5, tc.payload); n != want.Len() {
				t.Fatalf("publishSize = %d, mochi wrote %d", n, want.Len())
			}
		})
	}
}

func head(b []byte) []byte { return b[:min(len(b), 24)] }

// appendPuback must write exactly what mochi writes for the ack of a
// stored publish (with the msgid property the hook adds for MQTT 5).
func TestAppendPuback_MatchesMochi(t *testing.T) {
	for _, tc := range []struct {
		name  string
		pid   uint16
		v5    bool
		msgid string
	}{
		{"3.1.1", 7, false, ""},
		{"3.1.1 ignores msgid", 65535, false, "387737049223921664"},
		{"v5 with msgid", 1, true, "387737049223921664"},
		{"v5 with a 19-digit msgid", 300, true, "1387737049223921664"},
		{"v5 without msgid", 2, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pk := packets.Packet{
				FixedHeader:     packets.FixedHeader{Type: packets.Puback},
				PacketID:        tc.pid,
				ProtocolVersion: 4,
			}
			if tc.v5 {
				pk.ProtocolVersion = 5
				if tc.msgid != "" {
					pk.Properties.User = []packets.UserProperty{{Key: "msgid", Val: tc.msgid}}
				}
			}
			var want bytes.Buffer
			if err := pk.PubackEncode(&want); err != nil {
				t.Fatal(err)
			}
			got := appendPuback([]byte("keep"), tc.pid, tc.v5, tc.msgid)
			if !bytes.HasPrefix(got, []byte("keep")) {
				t.Fatal("appendPuback overwrote dst")
			}
			if !bytes.Equal(got[4:], want.Bytes()) {
				t.Fatalf("bytes differ from mochi's\n got %x\nwant %x", got[4:], want.Bytes())
			}
		})
	}
}
