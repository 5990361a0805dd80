package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RawV5 is a bare MQTT 5 connection for tests that must see the wire: what
// the broker sends, in order, with nothing acknowledged behind their back.
type RawV5 struct {
	net.Conn
	Connack packets.Packet
}

// DialRawV5 connects with an MQTT 5 CONNECT carrying props (Receive
// Maximum, Session Expiry Interval, ...) and returns once the CONNACK
// accepted it.
func DialRawV5(addr string, c packets.ConnectParams, props packets.Properties) (*RawV5, error) {
	conn, body, err := rawConnect(addr, 5, c, props)
	if err != nil {
		return nil, err
	}
	r := &RawV5{Conn: conn, Connack: packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connack}, ProtocolVersion: 5}}
	if err := r.Connack.ConnackDecode(body); err != nil {
		conn.Close()
		return nil, fmt.Errorf("CONNACK: %w", err)
	}
	return r, nil
}

// Write encodes pk as MQTT 5 and writes it.
func (r *RawV5) Write(pk packets.Packet) error {
	pk.ProtocolVersion = 5
	// mochi's encoder writes Response Topic and Correlation Data only when
	// told the peer may get them; a client's PUBLISH always may.
	pk.Mods.AllowResponseInfo = true
	var buf bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case packets.Subscribe:
		err = pk.SubscribeEncode(&buf)
	case packets.Puback:
		err = pk.PubackEncode(&buf)
	case packets.Pubrec:
		err = pk.PubrecEncode(&buf)
	case packets.Pubrel:
		err = pk.PubrelEncode(&buf)
	case packets.Pubcomp:
		err = pk.PubcompEncode(&buf)
	case packets.Publish:
		err = pk.PublishEncode(&buf)
	case packets.Disconnect:
		err = pk.DisconnectEncode(&buf)
	case packets.Pingreq:
		err = pk.PingreqEncode(&buf)
	default:
		err = fmt.Errorf("RawV5 cannot encode packet type %d", pk.FixedHeader.Type)
	}
	if err != nil {
		return err
	}
	_, err = r.Conn.Write(buf.Bytes())
	return err
}

// Read reads and decodes the next packet (the kinds a broker sends).
func (r *RawV5) Read() (packets.Packet, error) {
	var b [1]byte
	if _, err := io.ReadFull(r.Conn, b[:]); err != nil {
		return packets.Packet{}, err
	}
	pk := packets.Packet{ProtocolVersion: 5}
	if err := pk.FixedHeader.Decode(b[0]); err != nil {
		return pk, err
	}
	n, mult := 0, 1
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r.Conn, b[:]); err != nil {
			return pk, err
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		if i == 3 {
			return pk, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	pk.FixedHeader.Remaining = n
	body := make([]byte, n)
	if _, err := io.ReadFull(r.Conn, body); err != nil {
		return pk, err
	}
	var err error
	switch pk.FixedHeader.Type {
	case packets.Connack:
		err = pk.ConnackDecode(body)
	case packets.Publish:
		err = pk.PublishDecode(body)
	case packets.Puback:
		err = pk.PubackDecode(body)
	case packets.Pubrec:
		err = pk.PubrecDecode(body)
	case packets.Pubrel:
		err = pk.PubrelDecode(body)
	case packets.Pubcomp:
		err = pk.PubcompDecode(body)
	case packets.Suback:
		err = pk.SubackDecode(body)
	case packets.Unsuback:
		err = pk.UnsubackDecode(body)
	case packets.Disconnect:
		err = pk.DisconnectDecode(body)
		if n == 1 { // reason code alone; mochi's decoder reads it only with properties
			pk.ReasonCode = body[0]
		}
	case packets.Pingresp:
	default:
		err = fmt.Errorf("unexpected packet type %d", pk.FixedHeader.Type)
	}
	return pk, err
}
