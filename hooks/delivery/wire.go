package delivery

import "encoding/binary"

// appendPublish appends an MQTT PUBLISH packet to dst: QoS 0 or 1, never
// DUP or RETAIN, no properties (MQTT 5 gets an empty property list). It is
// byte for byte what mochi's Packet.PublishEncode writes for such a packet
// (wire_test.go checks), without a bytes.Buffer and a hook call per packet,
// so a pump can put a whole batch in one write.
func appendPublish(dst []byte, topic string, pid uint16, qos byte, v5 bool, payload []byte) []byte {
	remaining := 2 + len(topic) + len(payload)
	if qos > 0 {
		remaining += 2
	}
	if v5 {
		remaining++ // property length 0
	}
	dst = append(dst, 0x30|qos<<1)
	dst = binary.AppendUvarint(dst, uint64(remaining)) // MQTT's variable byte integer is this varint
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(topic)))
	dst = append(dst, topic...)
	if qos > 0 {
		dst = binary.BigEndian.AppendUint16(dst, pid)
	}
	if v5 {
		dst = append(dst, 0)
	}
	return append(dst, payload...)
}

// publishSize is the length appendPublish writes.
func publishSize(topic string, qos byte, v5 bool, payload int) int {
	remaining := 2 + len(topic) + payload
	if qos > 0 {
		remaining += 2
	}
	if v5 {
		remaining++
	}
	n := 2
	for r := remaining >> 7; r > 0; r >>= 7 {
		n++
	}
	return n + remaining
}

// appendPuback appends the PUBACK of a stored QoS 1 publish to dst: for
// MQTT 5 with reason 0x00 (success) and, when msgid is not empty, the user
// property msgid (see Hook.withMsgID). It is byte for byte what mochi
// writes for that ack (wire_test.go checks).
func appendPuback(dst []byte, pid uint16, v5 bool, msgid string) []byte {
	if !v5 || msgid == "" {
		dst = append(dst, 0x40, 2)
		return binary.BigEndian.AppendUint16(dst, pid)
	}
	const key = "msgid"
	props := 1 + 2 + len(key) + 2 + len(msgid) // 0x26, then two UTF-8 strings
	remaining := 2 + 1 + uvarintLen(props) + props
	dst = append(dst, 0x40)
	dst = binary.AppendUvarint(dst, uint64(remaining))
	dst = binary.BigEndian.AppendUint16(dst, pid)
	dst = append(dst, 0x00) // success
	dst = binary.AppendUvarint(dst, uint64(props))
	dst = append(dst, 0x26) // user property
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(key)))
	dst = append(dst, key...)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(msgid)))
	return append(dst, msgid...)
}

func uvarintLen(v int) int {
	n := 1
	for ; v >= 0x80; v >>= 7 {
		n++
	}
	return n
}
