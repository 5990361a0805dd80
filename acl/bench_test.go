package acl

import "testing"

// benchRules is a plausible operator config: a few device rules, the one
// that matches last.
var benchRules = []string{
	"read public/#",
	"readwrite rooms/+/chat",
	"write telemetry/%c",
	"readwrite devices/%u/%c/#",
}

func BenchmarkCanRead_OwnInbox(b *testing.B) {
	p := mustPolicy(b, benchRules, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !p.CanRead(alice, "inbox/alice") {
			b.Fatal("denied")
		}
	}
}

func BenchmarkCanRead_Rule(b *testing.B) {
	p := mustPolicy(b, benchRules, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !p.CanRead(alice, "devices/alice/alice-phone/sensors/temp") {
			b.Fatal("denied")
		}
	}
}

func BenchmarkCanPublish(b *testing.B) {
	p := mustPolicy(b, benchRules, nil)
	b.ReportAllocs()
	for b.Loop() {
		if !p.CanPublish(alice, "im/sendmsg") {
			b.Fatal("denied")
		}
	}
}
