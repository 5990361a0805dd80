// Package auth decides who a connecting client is.
//
// Two kinds of principal exist:
//
//   - Users present an access token (the MQTT password, or an HTTP bearer
//     token) issued by the application's back end. [Tokens] verifies it: a
//     compact JWS signed with HS256 under a shared secret, whose sub claim
//     must equal the MQTT username. Only HS256 is accepted, whatever the
//     token's header asks for, so a token cannot pick a weaker or different
//     algorithm (the "alg": "none" and key-confusion attacks). [Tokens.Mint]
//     issues such tokens for tests, tools and back ends written in Go.
//   - Operators and back-end services have static accounts in the config
//     file with a bcrypt password hash. [Accounts] checks them.
//
// Both produce an [Identity]. Roles are plain strings here ([RoleUser],
// [RoleAdmin], [RoleService]) so that this package imports nothing of the
// broker; the caller converts them to acl roles.
//
// Failures of [Tokens.Verify] wrap one of the ErrToken* sentinels so the
// caller can log a reason with errors.Is. Error text never contains the
// token, the password or the secret. [Accounts.Authenticate] only says yes or
// no: a static account's caller has nothing to learn from the reason.
//
// # Cost and floods
//
// Verifying a token is a few microseconds and needs no care. bcrypt is tens
// of milliseconds by design, so [Accounts] remembers successful checks (a
// keyed SHA-256 of the password, bounded in size) and lets only a few bcrypt
// comparisons run at once, leaving the rest of the CPU to message delivery
// while a flood of bad passwords queues up.
//
// # Concurrency
//
// [Tokens] and [Accounts] are immutable after construction apart from the
// internal, mutex-guarded cache of [Accounts]; all their methods are safe for
// concurrent use. To change the secret or the accounts, build a new value and
// swap it in.
package auth
