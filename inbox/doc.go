// Package inbox defines the inbox log: the per-user, append-only, durable
// sequence of messages that is inboxmq's source of truth for offline
// delivery, history and unread counts.
//
// Each uid owns one inbox. Every message the broker delivers durably to a
// user (a direct message, the sender's own copy, a deletion, a notice) is
// appended to that user's inbox with a sequence number (Seq) that is dense
// and increasing within the inbox, and a message id (ID) that is unique
// across the deployment and increasing within every inbox.
//
// MQTT session state in mochi is only a cache of this log: a device's
// delivery position is its Cursor, and everything after the cursor is
// (re)delivered, in Seq order, when the device is connected and subscribed.
//
// Store implementations live in subpackages (pebble for the embedded
// default, redis for scale-out) and must pass the shared behaviour suite in
// package storetest. All Store methods are safe for concurrent use.
package inbox
