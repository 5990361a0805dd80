package inbox

import (
	"reflect"
	"testing"
	"time"
)

func TestSessionCodecRoundTrip(t *testing.T) {
	s := Session{
		ID: "10021|phone", Owner: "3-ab-7", Username: "10021", Listener: "ws", ProtocolVersion: 5,
		ExpiryInterval: 2 * time.Hour, Expires: 1795309743123, Node: 3,
		Subscriptions: []Subscription{{Filter: "inbox/10021", QoS: 1}, {Filter: "a/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 1, Identifier: 9}},
	}
	b, err := EncodeSession(s)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeSession(b)
	if err != nil || !reflect.DeepEqual(got, s) {
		t.Fatalf("round trip = %+v, %v", got, err)
	}
	for _, bad := range []string{``, `{}`, `[]`, `{"v":2,"id":"x"}`, `{"v":1,"id":""}`, `{"v":1,"id":"x","ei":-1}`, `{"v":1,"id":"x","e":-5}`} {
		if _, err := DecodeSession([]byte(bad)); err == nil {
			t.Errorf("DecodeSession(%q) accepted", bad)
		}
	}
}

// Whatever decodes re-encodes to a record that decodes the same.
func FuzzDecodeSession(f *testing.F) {
	seed, _ := EncodeSession(Session{ID: "u|c", Owner: "o", ProtocolVersion: 4, ExpiryInterval: time.Hour,
		Subscriptions: []Subscription{{Filter: "inbox/u", QoS: 1}}})
	f.Add(seed)
	f.Add([]byte(`{"v":1,"id":"x","s":[{"f":"#","q":9}]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := DecodeSession(b)
		if err != nil {
			return
		}
		again, err := EncodeSession(s)
		if err != nil {
			t.Fatalf("decoded session does not encode: %v", err)
		}
		s2, err := DecodeSession(again)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Fatalf("re-decoded %+v, %v; want %+v", s2, err, s)
		}
	})
}
