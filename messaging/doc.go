// Package messaging holds the operations on inboxes that every front door
// shares: send a direct message, delete it, mark a conversation read,
// change the profile stamped on what one sends, send notices to one user,
// to many or to everyone, and the push fallback's checks. MQTT requests
// (the delivery hook) and the HTTP API both call a *Service, so one set of
// rules applies, and a new front door needs no MQTT.
//
// A Service writes to the inbox log (package inbox) and hands what it
// stored to its Delivery, which the delivery hook implements: the hook
// offers the entries to the connections of their inboxes and wakes other
// nodes. Requests with a client id (cid) are recorded in the same atomic
// write as their entries, so a resend is answered with the original
// message on any node; every incoming entry is put on the push schedule in
// that write too.
//
// The package knows nothing of MQTT: it depends on acl, bridge, events
// and inbox only.
package messaging
