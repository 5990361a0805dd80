package pebblestore

import (
	"fmt"
	"log/slog"
)

// quietLogger routes Pebble's log lines to slog at debug level. Pebble
// calls Fatalf only when it cannot go on (a failed WAL write, say); it
// must not return then, so it panics after logging.
type quietLogger struct{}

func (quietLogger) Infof(format string, args ...any) {
	slog.Debug(fmt.Sprintf(format, args...), "component", "pebble")
}

func (quietLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	slog.Error(msg, "component", "pebble")
	panic("pebble: " + msg)
}
