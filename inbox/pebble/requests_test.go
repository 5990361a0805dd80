package pebblestore

import (
	"bytes"
	"testing"
)

// FuzzDecodeRequest: a stored request record never panics the decoder,
// and what decodes encodes back to the same bytes.
func FuzzDecodeRequest(f *testing.F) {
	f.Add(encodeRequest(requestRecord{ms: 1733400000000, id: 42, seqs: []uint64{7, 9}}))
	f.Add(make([]byte, 47))
	f.Add(make([]byte, 49))
	f.Fuzz(func(t *testing.T, v []byte) {
		r, err := decodeRequest(v)
		if err != nil {
			return
		}
		if got := encodeRequest(r); !bytes.Equal(got, v) {
			t.Fatalf("decode then encode = %x, want %x", got, v)
		}
	})
}

// FuzzRequestAgeKey: age keys split back into what built them.
func FuzzRequestAgeKey(f *testing.F) {
	f.Add("10021", int64(1733400000000), "10001 c-1")
	f.Add("a", int64(0), "")
	f.Fuzz(func(t *testing.T, uid string, ms int64, key string) {
		if checkUID(uid) != nil || ms < 0 {
			return
		}
		u, m, k, err := parseRequestAgeKey(requestAgeKey(uid, ms, key))
		if err != nil || u != uid || m != ms || k != key {
			t.Fatalf("parse = %q %d %q %v, want %q %d %q", u, m, k, err, uid, ms, key)
		}
		_, _, _, _ = parseRequestAgeKey([]byte(key)) // any bytes: no panic
	})
}
