package access

// FailureReasons lists every reason OnAuthFailure is called with, so that
// a counter by reason can start each one's series at 0 before the first
// refused login. TestFailureReasonsListsEveryReason keeps it in step with
// access.go.
func FailureReasons() []string {
	return []string{
		"keepalive_too_long", "client_id_too_long", // OnConnect
		"anonymous_disabled", "invalid_username", "bad_password", "tokens_disabled", // authenticate
		"token_expired", "token_not_yet_valid", "token_signature", "token_algorithm", // tokenReason
		"token_subject", "token_claims", "token_malformed",
		"will_denied",
	}
}
