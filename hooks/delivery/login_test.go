package delivery

import (
	"slices"
	"testing"

	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/hooks/access"
)

// Single-login keeps the newest login by the order of the CONNECTs, even
// when two logins a moment apart are established in the other order.
func TestRegister_SingleLoginKeepsTheNewestCONNECT(t *testing.T) {
	user := &access.Identity{Identity: auth.Identity{UID: "10021", Role: acl.RoleUser}}
	service := &access.Identity{Identity: auth.Identity{UID: "svc", Role: acl.RoleService}}
	login := func(id *access.Identity, seq uint64) *conn {
		return &conn{cl: new(mqtt.Client), id: id, loginSeq: seq}
	}
	for _, tc := range []struct {
		name       string
		single     bool
		registered []*conn // in the order OnSessionEstablished runs
		wantKicked []int   // indexes into registered, over all registrations
		wantOnline []int
	}{
		{"newer established last", true, []*conn{login(user, 1), login(user, 2)}, []int{0}, []int{1}},
		{"newer established first: the older logs itself out", true, []*conn{login(user, 2), login(user, 1)}, []int{1}, []int{0}},
		{"three, out of order", true, []*conn{login(user, 2), login(user, 3), login(user, 1)}, []int{0, 2}, []int{1}},
		// Deny rows: nobody is logged out.
		{"single login off", false, []*conn{login(user, 2), login(user, 1)}, nil, []int{0, 1}},
		{"not a user", true, []*conn{login(service, 2), login(service, 1)}, nil, []int{0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &Hook{opts: Options{SingleLogin: tc.single}, byUID: map[string][]*conn{}}
			var kicked []int
			for _, c := range tc.registered {
				for _, k := range h.register(c) {
					kicked = append(kicked, slices.Index(tc.registered, k))
				}
			}
			slices.Sort(kicked)
			if !slices.Equal(kicked, tc.wantKicked) {
				t.Errorf("kicked %v, want %v", kicked, tc.wantKicked)
			}
			var online []int
			for _, c := range h.byUID[tc.registered[0].id.UID] {
				online = append(online, slices.Index(tc.registered, c))
			}
			slices.Sort(online)
			if !slices.Equal(online, tc.wantOnline) {
				t.Errorf("online %v, want %v", online, tc.wantOnline)
			}
		})
	}
}
