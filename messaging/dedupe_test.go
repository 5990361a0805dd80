package messaging

import "testing"

// A resend is recognised by its cid and a digest of what it sent: any
// change of recipient, content or extra makes another request, also where
// the fields' bytes run together.
func TestContentSum(t *testing.T) {
	sum := contentSum("10021", "hello", "x")
	for _, other := range [][32]byte{
		contentSum("10021", "hello!", "x"), contentSum("10022", "hello", "x"), contentSum("10021", "hellox", ""),
		contentSum("10021hello", "", "x"),
	} {
		if other == sum {
			t.Fatal("a different request has the same sum")
		}
	}
	if contentSum("10021", "hello", "x") != sum {
		t.Fatal("the same request has another sum")
	}
	if requestKey("10001", "") != "" || requestKey("10001", "c1") == requestKey("10002", "c1") {
		t.Fatal("request keys: none without a cid, one per sender")
	}
}
