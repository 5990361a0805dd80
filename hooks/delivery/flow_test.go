package delivery

import (
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A client that sends CONNECT with a Receive Maximum and never gets a
// session (refused, or gone before the CONNACK) leaves no entry behind:
// mochi calls no OnDisconnect for it, so the CONNECT path sweeps them.
func TestUnestablishedClientsAreSwept(t *testing.T) {
	srv := mqtt.New(nil)
	h := &Hook{}
	gone := srv.NewClient(nil, "t", "gone", false)
	live := srv.NewClient(nil, "t", "live", false)
	gone.Stop(nil)
	pk := packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Connect}, Properties: packets.Properties{ReceiveMaximum: 5}}
	h.hideReceiveMaximum(gone, &pk)
	if pk.Properties.ReceiveMaximum != 0 {
		t.Fatal("the Receive Maximum reached mochi")
	}
	h.flows.Store(gone, newFlow(gone, 5))
	h.stashes.Store(gone, []packets.Packet{})
	h.swept.Store(0) // a minute has passed
	pk.Properties.ReceiveMaximum = 7
	h.hideReceiveMaximum(live, &pk)
	for name, m := range map[string]interface {
		Load(any) (any, bool)
	}{"receive maximum": &h.receiveMax, "flows": &h.flows, "stashes": &h.stashes} {
		if _, ok := m.Load(gone); ok {
			t.Errorf("%s: the ended client's entry is still there", name)
		}
	}
	if v, ok := h.receiveMax.Load(live); !ok || v.(int) != 7 {
		t.Fatalf("the connecting client's Receive Maximum = %v, %v", v, ok)
	}
}
