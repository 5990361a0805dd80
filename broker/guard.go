package broker

import (
	"net"
	"sync"
)

// sizeGuard watches the MQTT byte stream of one connection for a packet
// announced larger than maximum_packet_size. mochi refuses such a packet
// on its fixed header but just closes the socket; MQTT 5 wants DISCONNECT
// with reason 0x95 (packet too large) first, so the client knows why.
// sizeGuard reads only fixed headers (and the first bytes of CONNECT for
// the protocol version); everything passes through unchanged, and mochi
// still does the refusing.
type sizeGuard struct {
	net.Conn
	max uint32

	mu      sync.Mutex // Read is called by one goroutine; mu is for clarity under -race
	state   uint8      // 0: fixed header byte, 1: remaining length, 2: body, 3: done watching
	length  uint32
	shift   uint
	nlen    int
	left    uint32
	first   bool   // the CONNECT packet is being read
	connect []byte // its first body bytes, for the protocol version
	v5      bool
}

const (
	guardHeader = iota
	guardLength
	guardBody
	guardOff
)

// disconnectTooLarge is an MQTT 5 DISCONNECT with reason 0x95 and no properties.
var disconnectTooLarge = []byte{0xE0, 0x01, 0x95}

// guardListener puts a sizeGuard on every connection it accepts.
type guardListener struct {
	net.Listener
	max uint32
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newSizeGuard(c, l.max), nil
}

func newSizeGuard(c net.Conn, max uint32) net.Conn {
	if max == 0 {
		return c
	}
	return &sizeGuard{Conn: c, max: max, first: true}
}

func (g *sizeGuard) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if n > 0 {
		g.mu.Lock()
		oversize := g.scan(p[:n])
		v5 := g.v5
		g.mu.Unlock()
		if oversize && v5 {
			// mochi will refuse the packet as soon as it reads this header.
			_, _ = g.Conn.Write(disconnectTooLarge)
		}
	}
	return n, err
}

// scan advances the parser over b; it reports an oversize announcement.
func (g *sizeGuard) scan(b []byte) bool {
	for i := 0; i < len(b); i++ {
		switch g.state {
		case guardHeader:
			g.state, g.length, g.shift, g.nlen = guardLength, 0, 0, 0
		case guardLength:
			c := b[i]
			g.length |= uint32(c&0x7f) << g.shift
			g.shift += 7
			g.nlen++
			if c&0x80 != 0 {
				if g.nlen == 4 {
					g.state = guardOff // malformed: mochi deals with it
				}
				continue
			}
			if g.length+1 > g.max {
				g.state = guardOff
				return true
			}
			if g.length == 0 {
				g.state, g.first = guardHeader, false
				continue
			}
			g.state, g.left = guardBody, g.length
		case guardBody:
			k := min(uint32(len(b)-i), g.left)
			if g.first && len(g.connect) < 8 {
				g.connect = append(g.connect, b[i:i+int(min(k, uint32(8-len(g.connect))))]...)
				// protocol name length (2), "MQTT" (4), then the version
				if len(g.connect) >= 7 && g.connect[0] == 0 && g.connect[1] == 4 {
					g.v5 = g.connect[6] == 5
				}
			}
			g.left -= k
			i += int(k) - 1
			if g.left == 0 {
				g.state, g.first = guardHeader, false
			}
		default:
			return false
		}
	}
	return false
}
