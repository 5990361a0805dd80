// Package access is the mochi hook that authenticates connections and
// authorizes subscriptions and deliveries for inboxmq.
//
// It is the only auth hook the broker installs: mochi ORs auth hooks, so a
// second one (auth.AllowHook in particular) would silently allow everything.
//
// Authentication: static accounts from the config file (bcrypt) first, then
// HS256 access tokens whose subject must equal the username, then anonymous
// clients when explicitly enabled. On success the client's internal id is
// rewritten to "{username}|{client id}" so no account can reach another
// account's session by choosing its client id.
//
// Authorization: reads (SUBSCRIBE filters and every delivery) are decided
// here by acl.Policy. Publishes are decided by the delivery hook's OnPublish
// instead, because mochi disconnects an MQTT 3.1.1 client whose publish fails
// the ACL check; inboxmq answers with an Error envelope and keeps the
// connection. So this hook must always be installed together with the
// delivery hook.
//
// Hook is safe for concurrent use; mochi calls it from every client goroutine.
package access
