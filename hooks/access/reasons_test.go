package access

import (
	"os"
	"regexp"
	"slices"
	"testing"
)

// Every reason access.go hands to OnAuthFailure (through authenticate,
// tokenReason or refuseConnect) is in FailureReasons, and nothing else is.
func TestFailureReasonsListsEveryReason(t *testing.T) {
	src, err := os.ReadFile("access.go")
	if err != nil {
		t.Fatal(err)
	}
	used := map[string]bool{}
	for _, re := range []*regexp.Regexp{
		regexp.MustCompile(`return nil, "([a-z_]+)"`),            // authenticate
		regexp.MustCompile(`return "(token_[a-z_]+)"`),           // tokenReason
		regexp.MustCompile(`refuseConnect\(cl, pk, "([a-z_]+)"`), // OnConnect
		regexp.MustCompile(`OnAuthFailure\("([a-z_]+)"\)`),       // direct calls
	} {
		for _, m := range re.FindAllStringSubmatch(string(src), -1) {
			used[m[1]] = true
		}
	}
	if len(used) < 10 {
		t.Fatalf("found %d reasons in access.go, want at least 10: the patterns no longer match the code", len(used))
	}
	for r := range used {
		if !slices.Contains(FailureReasons(), r) {
			t.Errorf("access.go refuses with %q, which FailureReasons does not list", r)
		}
	}
	for _, r := range FailureReasons() {
		if !used[r] {
			t.Errorf("FailureReasons lists %q, which access.go never uses", r)
		}
	}
}
