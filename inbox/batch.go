package inbox

import "context"

// AckWriter is an optional extra of a Store whose calls each cost a
// network round trip (Redis): the delivery side finds it by type
// assertion and writes what all its connections acknowledged in one call.
// A store without it gets one SetCursor per device.
type AckWriter interface {
	// WriteAcks moves each of cursors forward (as SetCursor: never back)
	// and takes the scheduled push checks of the messages in acked off the
	// schedule (a check would find them acknowledged and do nothing; Seqs
	// without one are ignored), in one step where the store can.
	WriteAcks(ctx context.Context, cursors []CursorPos, acked []PushRange) error
}

// CursorPos is one device's delivery position, for WriteAcks.
type CursorPos struct {
	UID, Device string
	Seq         uint64
}

// PushRange names the messages From..To (inclusive) of UID's inbox.
type PushRange struct {
	UID      string
	From, To uint64
}
