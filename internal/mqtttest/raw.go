package mqtttest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RawConnect opens a TCP connection, sends a CONNECT built from c (3.1.1)
// and returns the connection once the CONNACK accepted it. Closing the
// connection afterwards ends it without DISCONNECT, as a crashed client would.
func RawConnect(addr string, c packets.ConnectParams) (net.Conn, error) {
	conn, _, err := rawConnect(addr, 4, c, packets.Properties{})
	return conn, err
}

// RawConnectV5 is RawConnect with an MQTT 5 CONNECT (no properties).
func RawConnectV5(addr string, c packets.ConnectParams) (net.Conn, error) {
	conn, _, err := rawConnect(addr, 5, c, packets.Properties{})
	return conn, err
}

// RawConnectOn sends a 3.1.1 CONNECT built from c on an open connection
// (one that already carried a PROXY protocol header, say) and waits for
// the CONNACK that accepts it. The connection stays open either way.
func RawConnectOn(conn net.Conn, c packets.ConnectParams) error {
	_, err := connectOn(conn, 4, c, packets.Properties{})
	return err
}

// rawConnect dials, sends CONNECT (with props for MQTT 5) and returns the
// connection and the CONNACK's body once it accepted the connection.
func rawConnect(addr string, version byte, c packets.ConnectParams, props packets.Properties) (net.Conn, []byte, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, nil, err
	}
	body, err := connectOn(conn, version, c, props)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	return conn, body, nil
}

func connectOn(conn net.Conn, version byte, c packets.ConnectParams, props packets.Properties) ([]byte, error) {
	c.ProtocolName = []byte("MQTT")
	c.UsernameFlag, c.PasswordFlag = len(c.Username) > 0, len(c.Password) > 0
	if c.Keepalive == 0 {
		c.Keepalive = 30
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: version, Connect: c, Properties: props}
	pk.Mods.AllowResponseInfo = true // a will's Response Topic and Correlation Data
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		return nil, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	typ, body, err := ReadRawPacket(conn)
	if err != nil {
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	if typ != packets.Connack || len(body) < 2 || body[1] != 0 {
		return nil, fmt.Errorf("connection refused: CONNACK type %d % x", typ, body)
	}
	return body, nil
}

// ReadRawPacket reads one MQTT packet from r unbuffered, so nothing after
// it is consumed: its type (the high nibble of the first byte) and the
// bytes after the fixed header.
func ReadRawPacket(r io.Reader) (typ byte, body []byte, err error) {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, nil, err
	}
	typ = b[0] >> 4
	n, mult := 0, 1
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, b[:]); err != nil {
			return typ, nil, err
		}
		n += int(b[0]&0x7f) * mult
		if b[0]&0x80 == 0 {
			break
		}
		if i == 3 {
			return typ, nil, errors.New("malformed remaining length")
		}
		mult *= 128
	}
	body = make([]byte, n)
	_, err = io.ReadFull(r, body)
	return typ, body, err
}

// RawSubscribe sends a 3.1.1 SUBSCRIBE of filter at qos on conn (from
// RawConnect) and returns the SUBACK's return code once it came.
func RawSubscribe(conn net.Conn, filter string, qos byte) (byte, error) {
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Subscribe, Qos: 1}, ProtocolVersion: 4, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: filter, Qos: qos}}}
	var buf bytes.Buffer
	if err := pk.SubscribeEncode(&buf); err != nil {
		return 0, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		return 0, err
	}
	typ, body, err := ReadRawPacket(conn)
	if err != nil {
		return 0, err
	}
	if typ != packets.Suback || len(body) < 3 {
		return 0, fmt.Errorf("want SUBACK, got packet type %d % x", typ, body)
	}
	return body[2], nil
}
