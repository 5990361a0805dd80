package broker

import (
	"bytes"
	"testing"
)

// The guard finds an oversize announcement in the byte stream however it
// is split into reads, and only there.
func TestSizeGuardScan(t *testing.T) {
	connect := func(version byte) []byte {
		body := []byte{0, 4, 'M', 'Q', 'T', 'T', version, 0x02, 0, 30, 0}
		return append([]byte{0x10, byte(len(body))}, body...)
	}
	small := append([]byte{0x30, 5}, []byte("hello")...)
	ping := []byte{0xC0, 0}
	oversize := []byte{0x30, 0x80, 0x80, 0x10} // remaining 262,144: one over a 256 KiB limit
	for _, tc := range []struct {
		name    string
		stream  []byte
		wantHit bool
		wantV5  bool
	}{
		{"v5 then oversize", bytes.Join([][]byte{connect(5), small, ping, oversize}, nil), true, true},
		{"v3 then oversize", bytes.Join([][]byte{connect(4), small, oversize}, nil), true, false},
		{"v5, all within the limit", bytes.Join([][]byte{connect(5), small, ping, small}, nil), false, true},
		{"no packets", nil, false, false},
	} {
		for chunk := 1; chunk <= 9; chunk++ {
			g := &sizeGuard{max: 256 << 10, first: true}
			hit := false
			for i := 0; i < len(tc.stream); i += chunk {
				if g.scan(tc.stream[i:min(i+chunk, len(tc.stream))]) {
					hit = true
				}
			}
			if hit != tc.wantHit || g.v5 != tc.wantV5 {
				t.Errorf("%s, chunks of %d: oversize %v v5 %v, want %v %v", tc.name, chunk, hit, g.v5, tc.wantHit, tc.wantV5)
			}
		}
	}
}
