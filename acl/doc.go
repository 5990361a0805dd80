// Package acl decides who may subscribe to, receive and publish which MQTT
// topics in inboxmq. It is pure: it knows nothing of mochi-mqtt, sessions or
// the network, so the mochi hook in hooks/ only maps a client to a Subject
// and asks a Policy.
//
// The decisions are deny by default. A few are built in and cannot be changed
// by configuration, because private messaging depends on them:
//
//   - "inbox/{uid}" is readable only by the authenticated account named uid,
//     and only as that exact filter: no wildcard or shared subscription that
//     could reach an inbox is ever granted, to anyone.
//   - "broadcast" is readable by every authenticated account.
//   - "$SYS/..." is readable by RoleAdmin only.
//   - The im/ command topics are publishable by authenticated accounts
//     ("im/systemadmin" by RoleAdmin and RoleService only).
//
// Operator rules from the config file (mosquitto-style "read|write|readwrite
// pattern", with %u and %c placeholders) may open further topics, but never a
// reserved one (see Reserved), and never through a filter whose first level is
// a wildcard, since such a filter could match an inbox.
//
// We do not use mochi's auth ledger (hooks/auth): it allows when no rule
// matches, has no placeholders, and its MatchTopic treats "inbox/+" as
// matching "inbox/alice/x", an ACL bypass. Covers here follows the MQTT
// matching rules level by level.
//
// A Policy is immutable after NewPolicy and safe for concurrent use by any
// number of goroutines. CanRead runs once per delivered message per
// subscriber, so it is written not to allocate.
package acl
