// Package legacy brings over what a legacy socket.io chat server left in
// Redis at cut-over: the offline messages of hash chat_history (field: the
// recipient's uid; value: a JSON array of message objects) and the notices
// of hash nodejs_notification (field: uid; value: a JSON array of notice
// JSON strings). parse.go reads those shapes liberally; Importer appends
// the entries to the inbox store in order, each marked with an id derived
// from its content, so that running it again imports nothing twice; and
// Source reads (and, after an import, trims) the legacy hashes.
//
// An Importer is used by one goroutine at a time.
package legacy
