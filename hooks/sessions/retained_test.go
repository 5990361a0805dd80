package sessions

import (
	"strings"
	"testing"
	"time"

	paho5 "github.com/eclipse/paho.golang/paho"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// storedRetained reads and decodes topic's retained message from the store.
func storedRetained(t *testing.T, store Store, topic string) (packets.Packet, bool) {
	t.Helper()
	all, err := store.RetainedMessages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := all[topic]
	if !ok {
		return packets.Packet{}, false
	}
	pk, err := decodeRetained(b)
	if err != nil {
		t.Fatalf("stored retained message of %s unreadable: %v", topic, err)
	}
	return pk, true
}

// A retained message is in the store when its publisher gets the PUBACK;
// an empty one removes it.
func TestRetainedStored(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	tests := []struct {
		name string
		// publish publishes with p (a v5 client) or v3 (a 3.1.1 one).
		publish     func(t *testing.T, v3 *v3Client, v5 *v5Client)
		topic       string
		wantStored  bool
		wantPayload string
		wantExpiry  int64 // seconds after the publish, 0: none
		wantContent string
	}{
		{
			name:       "3.1.1 retained message",
			publish:    func(t *testing.T, v3 *v3Client, _ *v5Client) { v3.pub(t, "ret/a", true, "on") },
			topic:      "ret/a",
			wantStored: true, wantPayload: "on",
		},
		{
			name: "MQTT 5 with expiry and properties",
			publish: func(t *testing.T, _ *v3Client, v5 *v5Client) {
				v5.pub(t, &paho5.Publish{Topic: "ret/b", Retain: true, Payload: []byte("21.5"),
					Properties: &paho5.PublishProperties{MessageExpiry: u(3600), ContentType: "text/plain"}})
			},
			topic:      "ret/b",
			wantStored: true, wantPayload: "21.5", wantExpiry: 3600, wantContent: "text/plain",
		},
		{
			name: "an empty retained message clears the topic",
			publish: func(t *testing.T, v3 *v3Client, _ *v5Client) {
				v3.pub(t, "ret/c", true, "on")
				v3.pub(t, "ret/c", true, "")
			},
			topic:      "ret/c",
			wantStored: false,
		},
		{
			name:       "clearing a topic that had none",
			publish:    func(t *testing.T, v3 *v3Client, _ *v5Client) { v3.pub(t, "ret/d", true, "") },
			topic:      "ret/d",
			wantStored: false,
		},
		{
			name:       "not retained: not stored",
			publish:    func(t *testing.T, v3 *v3Client, _ *v5Client) { v3.pub(t, "ret/e", false, "on") },
			topic:      "ret/e",
			wantStored: false,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			ts := startServer(t, db, Options{})
			v3 := connectV3(t, ts.addr, "pub3", "alice", true)
			v5 := connectV5(t, ts.addr, "pub5", v5Options{User: "alice", CleanStart: true})
			before := time.Now().Unix()
			tt.publish(t, v3, v5)
			after := time.Now().Unix()
			pk, ok := storedRetained(t, db, tt.topic)
			if ok != tt.wantStored {
				t.Fatalf("stored after the PUBACK: %v, want %v", ok, tt.wantStored)
			}
			if strings.Contains(ts.logs.String(), "level=ERROR") {
				t.Errorf("errors logged:\n%s", ts.logs.String())
			}
			if !ok {
				return
			}
			if pk.TopicName != tt.topic || string(pk.Payload) != tt.wantPayload || !pk.FixedHeader.Retain {
				t.Errorf("stored %s %q (retain %v), want %s %q retained", pk.TopicName, pk.Payload, pk.FixedHeader.Retain, tt.topic, tt.wantPayload)
			}
			if pk.Properties.ContentType != tt.wantContent {
				t.Errorf("content type %q, want %q", pk.Properties.ContentType, tt.wantContent)
			}
			if tt.wantExpiry > 0 && (pk.Expiry < before+tt.wantExpiry || pk.Expiry > after+tt.wantExpiry) {
				t.Errorf("expiry %d, want the publish time + %d (%d..%d)", pk.Expiry, tt.wantExpiry, before+tt.wantExpiry, after+tt.wantExpiry)
			}
			if pk.Created < before || pk.Created > after {
				t.Errorf("created %d, want %d..%d", pk.Created, before, after)
			}
		})
	}
}

// Retained messages come back after a restart, with their expiry; those
// that expired or were cleared meanwhile do not, nor unreadable records.
func TestRetainedSurvivesRestart(t *testing.T) {
	u := func(v uint32) *uint32 { return &v }
	publisher := &mqtt.Client{ID: "pub"}
	tests := []struct {
		name string
		// before runs on the first server (publishing through pub) or
		// writes the store directly.
		before      func(t *testing.T, pub *v5Client, db *pebbleDB)
		topic       string
		wantRestore bool
		wantPayload string
		wantExpiry  bool   // delivered with a Message Expiry Interval
		wantLog     string // logged at Restore
	}{
		{
			name: "without expiry",
			before: func(t *testing.T, pub *v5Client, _ *pebbleDB) {
				pub.pub(t, &paho5.Publish{Topic: "dev/1/state", Retain: true, Payload: []byte("on")})
			},
			topic: "dev/1/state", wantRestore: true, wantPayload: "on",
		},
		{
			name: "with expiry",
			before: func(t *testing.T, pub *v5Client, _ *pebbleDB) {
				pub.pub(t, &paho5.Publish{Topic: "dev/1/state", Retain: true, Payload: []byte("on"),
					Properties: &paho5.PublishProperties{MessageExpiry: u(3600), ContentType: "text/plain"}})
			},
			topic: "dev/1/state", wantRestore: true, wantPayload: "on", wantExpiry: true,
		},
		{
			name: "cleared before the restart",
			before: func(t *testing.T, pub *v5Client, _ *pebbleDB) {
				pub.pub(t, &paho5.Publish{Topic: "dev/1/state", Retain: true, Payload: []byte("on")})
				pub.pub(t, &paho5.Publish{Topic: "dev/1/state", Retain: true})
			},
			topic: "dev/1/state", wantRestore: false,
		},
		{
			name: "expired while down",
			before: func(t *testing.T, _ *v5Client, db *pebbleDB) {
				now := time.Now().Unix()
				pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
					TopicName: "dev/1/state", Payload: []byte("old"), Created: now - 120, Expiry: now - 60,
					Properties: packets.Properties{MessageExpiryInterval: 60}}
				b, err := encodeRetained(publisher, pk)
				if err != nil {
					t.Fatal(err)
				}
				if err := db.PutRetained(testCtx(t), "dev/1/state", b); err != nil {
					t.Fatal(err)
				}
			},
			topic: "dev/1/state", wantRestore: false,
		},
		{
			name: "unreadable record",
			before: func(t *testing.T, _ *v5Client, db *pebbleDB) {
				if err := db.PutRetained(testCtx(t), "dev/1/state", []byte("not json")); err != nil {
					t.Fatal(err)
				}
			},
			topic: "dev/1/state", wantRestore: false, wantLog: "stored retained message unreadable",
		},
		{
			name: "record stored under another topic",
			before: func(t *testing.T, _ *v5Client, db *pebbleDB) {
				b, err := encodeRetained(publisher, packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Publish, Retain: true},
					TopicName: "dev/2/state", Payload: []byte("x")})
				if err != nil {
					t.Fatal(err)
				}
				if err := db.PutRetained(testCtx(t), "dev/1/state", b); err != nil {
					t.Fatal(err)
				}
			},
			topic: "dev/1/state", wantRestore: false, wantLog: "stored retained message unreadable",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openPebble(t)
			ts := startServer(t, db, Options{})
			pub := connectV5(t, ts.addr, "pub", v5Options{CleanStart: true})
			tt.before(t, pub, db)
			var stored packets.Packet
			if tt.wantRestore {
				stored, _ = storedRetained(t, db, tt.topic)
			}
			ts.stop()
			db.reopen(t)

			ts2 := startServer(t, db, Options{})
			if got := ts2.retained == 1; got != tt.wantRestore {
				t.Fatalf("Restore restored %d retained messages, want restored %v", ts2.retained, tt.wantRestore)
			}
			if tt.wantLog != "" && !strings.Contains(ts2.logs.String(), tt.wantLog) {
				t.Errorf("log has no %q:\n%s", tt.wantLog, ts2.logs.String())
			}
			if n := ts2.srv.Info.Retained; n != int64(ts2.retained) {
				t.Errorf("server counts %d retained messages, want %d", n, ts2.retained)
			}
			if tt.name == "expired while down" {
				if _, held := storedRetainedRaw(t, db, tt.topic); held {
					t.Error("a retained message that expired while the broker was down is still in the store")
				}
			}
			pk, inServer := ts2.srv.Topics.Retained.Get(tt.topic)
			if inServer != tt.wantRestore {
				t.Fatalf("retained message of %s in the server: %v, want %v", tt.topic, inServer, tt.wantRestore)
			}
			if !tt.wantRestore {
				return
			}
			if pk.Expiry != stored.Expiry || pk.Created != stored.Created {
				t.Errorf("restored expiry %d created %d, want the stored %d %d", pk.Expiry, pk.Created, stored.Expiry, stored.Created)
			}
			if tt.wantExpiry && pk.Expiry == 0 {
				t.Error("restored without its expiry")
			}
			if tt.wantExpiry && pk.ProtocolVersion != 5 {
				// mochi expires a retained message only if its version is 5.
				t.Errorf("restored with protocol version %d: mochi would never expire it", pk.ProtocolVersion)
			}

			sub := connectV5(t, ts2.addr, "sub", v5Options{CleanStart: true})
			sub.sub(t, &paho5.Subscribe{Subscriptions: []paho5.SubscribeOptions{{Topic: "dev/+/state", QoS: 1}}})
			m := next(t, sub.msgs)
			if m.Topic != tt.topic || m.Payload != tt.wantPayload || !m.Retain {
				t.Fatalf("new subscriber got %+v, want %q retained on %s", m, tt.wantPayload, tt.topic)
			}
			if tt.wantExpiry {
				if m.Expiry == 0 || m.Expiry > 3600 || m.Content != "text/plain" {
					t.Errorf("delivered with expiry %d, content type %q; want (0, 3600] and text/plain", m.Expiry, m.Content)
				}
			}
		})
	}
}

// A retained message mochi expires on a running server leaves the store too.
func TestExpiredRetainedRemovedFromStore(t *testing.T) {
	db := openPebble(t)
	ts := startServer(t, db, Options{})
	pub := connectV5(t, ts.addr, "pub", v5Options{CleanStart: true})
	one := uint32(1)
	pub.pub(t, &paho5.Publish{Topic: "dev/1/state", Retain: true, Payload: []byte("short"),
		Properties: &paho5.PublishProperties{MessageExpiry: &one}})
	pub.pub(t, &paho5.Publish{Topic: "dev/2/state", Retain: true, Payload: []byte("long")})
	if _, ok := storedRetained(t, db, "dev/1/state"); !ok {
		t.Fatal("retained message not stored")
	}
	waitUntil(t, "the expired retained message removed from the store", func() bool {
		_, ok := storedRetained(t, db, "dev/1/state")
		return !ok
	})
	if _, ok := ts.srv.Topics.Retained.Get("dev/1/state"); ok {
		t.Error("expired retained message still in the server")
	}
	if _, ok := storedRetained(t, db, "dev/2/state"); !ok {
		t.Error("a retained message without expiry was removed")
	}
}

// storedRetainedRaw reports whether the store holds a record for topic.
func storedRetainedRaw(t *testing.T, db *pebbleDB, topic string) ([]byte, bool) {
	t.Helper()
	all, err := db.RetainedMessages(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	b, ok := all[topic]
	return b, ok
}

// A record written before the protocol version was kept, with an expiry,
// is from an MQTT 5 publisher: only MQTT 5 sets one.
func TestDecodeRetainedWithoutVersion(t *testing.T) {
	b := []byte(`{"m":{"topic_name":"dev/1/state","payload":"b24=","fixedheader":{"type":3,"retain":true}},"e":4102444800}`)
	pk, err := decodeRetained(b)
	if err != nil {
		t.Fatal(err)
	}
	if pk.Expiry != 4102444800 || pk.ProtocolVersion != 5 {
		t.Fatalf("decoded expiry %d version %d, want 4102444800 and 5", pk.Expiry, pk.ProtocolVersion)
	}
}
