package delivery

import (
	"encoding/json"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// Will properties. mochi v2.7.9 keeps only a will's User Properties and
// Will Delay Interval: its Will struct has no field for Content Type,
// Payload Format Indicator, Message Expiry Interval, Response Topic or
// Correlation Data, so the will is published without them (MQTT 5
// 3.1.3.2 says they are sent with it). The will's User Properties are the
// one thing mochi carries from CONNECT to every copy of the will (live,
// queued, retained, stored), so the others ride along as one last user
// property, added at CONNECT and taken off again when a copy is encoded.

// willPropertiesKey names that property. A NUL byte cannot appear in a
// well-formed MQTT string from a client (MQTT-1.5.4-2), and mochi refuses
// such strings, so no client publish can carry it.
const willPropertiesKey = "\x00inboxmq-will"

// willProperties are the will properties mochi would lose.
type willProperties struct {
	ContentType     string `json:"ct,omitempty"`
	PayloadFormat   *byte  `json:"pf,omitempty"`
	MessageExpiry   uint32 `json:"me,omitempty"`
	ResponseTopic   string `json:"rt,omitempty"`
	CorrelationData []byte `json:"cd,omitempty"`
}

// carryWillProperties is called with a CONNECT: it packs what mochi would
// drop into the will's User Properties.
func carryWillProperties(pk *packets.Packet) {
	p := pk.Connect.WillProperties
	if !pk.Connect.WillFlag || pk.ProtocolVersion < 5 {
		return
	}
	w := willProperties{ContentType: p.ContentType, MessageExpiry: p.MessageExpiryInterval,
		ResponseTopic: p.ResponseTopic, CorrelationData: p.CorrelationData}
	if p.PayloadFormatFlag {
		w.PayloadFormat = &p.PayloadFormat
	}
	if w.ContentType == "" && w.PayloadFormat == nil && w.MessageExpiry == 0 && w.ResponseTopic == "" && len(w.CorrelationData) == 0 {
		return
	}
	b, err := json.Marshal(w)
	if err != nil {
		return
	}
	user := append([]packets.UserProperty(nil), p.User...)
	pk.Connect.WillProperties.User = append(user, packets.UserProperty{Key: willPropertiesKey, Val: string(b)})
}

// restoreWillProperties is called with every PUBLISH mochi encodes: a copy
// of a will gets its properties back, and the carrier is removed. The
// Message Expiry Interval sent is what is left of the will's (MQTT-3.3.2-6).
func restoreWillProperties(pk packets.Packet, now time.Time) packets.Packet {
	user := pk.Properties.User
	if len(user) == 0 || user[len(user)-1].Key != willPropertiesKey {
		return pk
	}
	var w willProperties
	err := json.Unmarshal([]byte(user[len(user)-1].Val), &w)
	pk.Properties.User = user[: len(user)-1 : len(user)-1]
	if err != nil {
		return pk
	}
	pk.Properties.ContentType, pk.Properties.ResponseTopic = w.ContentType, w.ResponseTopic
	pk.Properties.CorrelationData = w.CorrelationData
	if w.PayloadFormat != nil {
		pk.Properties.PayloadFormat, pk.Properties.PayloadFormatFlag = *w.PayloadFormat, true
	}
	if w.MessageExpiry > 0 && pk.Properties.MessageExpiryInterval == 0 {
		left := int64(w.MessageExpiry)
		if pk.Created > 0 {
			left -= now.Unix() - pk.Created
		}
		pk.Properties.MessageExpiryInterval = uint32(max(left, 1))
	}
	return pk
}
