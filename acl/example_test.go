package acl_test

import (
	"fmt"

	"github.com/inboxmq/inboxmq/acl"
)

func ExamplePolicy() {
	rule, err := acl.ParseRule("readwrite devices/%u/#")
	if err != nil {
		panic(err)
	}
	p, err := acl.NewPolicy([]acl.Rule{rule}, nil)
	if err != nil {
		panic(err)
	}
	alice := acl.Subject{Username: "alice", ClientID: "phone", Role: acl.RoleUser}
	fmt.Println(p.CanRead(alice, "inbox/alice"))
	fmt.Println(p.CanRead(alice, "inbox/+"))
	fmt.Println(p.CanRead(alice, "devices/alice/#"))
	fmt.Println(p.CanPublish(alice, "devices/bob/temp"))
	// Output:
	// true
	// false
	// true
	// false
}

func ExampleCovers() {
	fmt.Println(acl.Covers("inbox/+", "inbox/alice"))
	fmt.Println(acl.Covers("inbox/+", "inbox/alice/x"))
	fmt.Println(acl.Covers("a/#", "a/+/b"))
	// Output:
	// true
	// false
	// true
}
