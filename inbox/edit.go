package inbox

import "context"

// Editor replaces the text of a stored message, for edits by its sender.
// Every Store implements it; it is apart from History so that the stores
// can keep it in a file of its own.
type Editor interface {
	// Edit sets Content of the message with seq in uid's inbox to content
	// and its Edited to at (Unix milliseconds); every other field, and its
	// place in the inbox and its thread, stay. ok is false when no such
	// message is held. The change is as durable as an Append.
	Edit(ctx context.Context, uid string, seq uint64, content string, at int64) (ok bool, err error)
}
