package mqtttest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// RawConnect opens a TCP connection, sends a CONNECT built from c (3.1.1)
// and returns the connection once the CONNACK accepted it. Closing the
// connection afterwards ends it without DISCONNECT, as a crashed client would.
func RawConnect(addr string, c packets.ConnectParams) (net.Conn, error) {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, err
	}
	c.ProtocolName = []byte("MQTT")
	c.UsernameFlag, c.PasswordFlag = len(c.Username) > 0, len(c.Password) > 0
	if c.Keepalive == 0 {
		c.Keepalive = 30
	}
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, ProtocolVersion: 4, Connect: c}
	var buf bytes.Buffer
	if err := pk.ConnectEncode(&buf); err != nil {
		conn.Close()
		return nil, err
	}
	if _, err := conn.Write(buf.Bytes()); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	ack := make([]byte, 4)
	if _, err := bufio.NewReader(conn).Read(ack); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Time{})
	if ack[0]>>4 != packets.Connack || ack[3] != 0 {
		conn.Close()
		return nil, fmt.Errorf("connection refused: CONNACK % x", ack)
	}
	return conn, nil
}
