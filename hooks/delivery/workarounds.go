package delivery

import (
	"strings"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/inboxmq/inboxmq/hooks/access"
)

// Workarounds for mochi v2.7.9 behaviour that would break inbox delivery or
// leave a client without an answer.

// refuseEmptyPersistentID answers a 3.1.1 CONNECT with an empty client id
// and clean session 0 with CONNACK 0x02 (identifier rejected), as 3.1.1
// says [MQTT-3.1.3-8]; mochi answers 0x80, which is not a 3.1.1 code.
func (h *Hook) refuseEmptyPersistentID(cl *mqtt.Client, pk packets.Packet) error {
	if pk.ProtocolVersion >= 5 || pk.Connect.Clean || pk.Connect.ClientIdentifier != "" {
		return nil
	}
	cl.Properties.ProtocolVersion = pk.ProtocolVersion // not parsed yet: SendConnack encodes by it
	_ = h.opts.Server.SendConnack(cl, packets.ErrClientIdentifierNotValid, false, nil)
	return packets.ErrRejectPacket
}

// refuseAuth ends a connection that sends AUTH: inboxmq offers no
// enhanced authentication, so no CONNECT carries an authentication method
// and an AUTH packet is a protocol error (DISCONNECT 0x82) [MQTT-4.12.0-1];
// mochi would ignore it.
func (h *Hook) refuseAuth(cl *mqtt.Client) error {
	access.EndConnection(h.opts.Server, cl, packets.ErrProtocolViolation)
	return packets.ErrRejectPacket
}

// checkInboundAlias ends a connection that publishes with an empty topic
// and a topic alias it never set: a protocol error (DISCONNECT 0x82)
// (MQTT 5, 3.3.2.3.4), where mochi would route it as the empty topic. Set(id,
// "") is what mochi calls next anyway; it returns the alias's topic, or ""
// when there is none.
func (h *Hook) checkInboundAlias(cl *mqtt.Client, pk packets.Packet) error {
	if pk.TopicName != "" || !pk.Properties.TopicAliasFlag || pk.Properties.TopicAlias == 0 {
		return nil
	}
	if cl.State.TopicAliases.Inbound.Set(pk.Properties.TopicAlias, "") != "" {
		return nil
	}
	access.EndConnection(h.opts.Server, cl, packets.ErrProtocolViolation)
	return packets.ErrRejectPacket
}

// sysMarker prefixes a publish to a $SYS topic: mochi drops such publishes
// without a PUBACK, so a QoS 1 client would wait forever. Marked, the
// publish reaches OnPublish, which refuses it like any forbidden topic.
const sysMarker = "$inboxmq-refused/"

// markSysPublish is called from OnPacketRead for inbound PUBLISH packets.
func markSysPublish(pk *packets.Packet) {
	if len(pk.TopicName) >= len(mqtt.SysPrefix) && strings.EqualFold(pk.TopicName[:len(mqtt.SysPrefix)], mqtt.SysPrefix) {
		pk.TopicName = sysMarker + pk.TopicName
	}
}

// identifyRetained gives the retained messages sent in answer to a SUBSCRIBE
// their Subscription Identifier [MQTT-3.3.4-3]. mochi sends them after
// OnSubscribed with the SUBSCRIBE's own filter entries, and reads the
// identifier only from Identifiers, which it fills when it merges routed
// subscriptions, never for these. OnSubscribed shares the filters' backing
// array with that loop, and mochi has already stored its own copies of each
// subscription, so the map set here reaches only the retained messages.
func identifyRetained(pk packets.Packet) {
	for i, f := range pk.Filters {
		if f.Identifier > 0 && f.Identifiers == nil {
			pk.Filters[i].Identifiers = map[string]int{f.Filter: f.Identifier}
		}
	}
}

// completeConnack adds to an accepting MQTT 5 CONNACK what mochi leaves out
// although the client must know it (MQTT 5 3.2.2.3): without Topic Alias
// Maximum a client may not use topic aliases at all [MQTT-3.2.2-17], without
// Maximum Packet Size it may send what the broker then refuses, and a
// feature the broker lacks must be announced as unavailable.
func (h *Hook) completeConnack(cl *mqtt.Client, pk packets.Packet) packets.Packet {
	if cl.Properties.ProtocolVersion < 5 || pk.ReasonCode >= packets.ErrUnspecifiedError.Code {
		return pk
	}
	caps := h.opts.Server.Options.Capabilities
	p := &pk.Properties
	p.TopicAliasMaximum, p.MaximumPacketSize = caps.TopicAliasMaximum, caps.MaximumPacketSize
	for _, f := range []struct {
		have       byte
		value      *byte
		valueIsSet *bool
	}{
		{caps.RetainAvailable, &p.RetainAvailable, &p.RetainAvailableFlag},
		{caps.WildcardSubAvailable, &p.WildcardSubAvailable, &p.WildcardSubAvailableFlag},
		{caps.SubIDAvailable, &p.SubIDAvailable, &p.SubIDAvailableFlag},
		{caps.SharedSubAvailable, &p.SharedSubAvailable, &p.SharedSubAvailableFlag},
	} {
		if f.have == 0 { // absent means available
			*f.value, *f.valueIsSet = 0, true
		}
	}
	return pk
}
