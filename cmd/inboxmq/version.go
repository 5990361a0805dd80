package main

import (
	"fmt"
	"io"

	"github.com/inboxmq/inboxmq/internal/version"
)

// printVersion answers "inboxmq version" and "inboxmq --version": the
// first line alone ("inboxmq v1.2.3") is what scripts read.
func printVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlags("version", "inboxmq version: print the version, commit, source date and Go version.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	v := version.Get()
	fmt.Fprintf(stdout, "inboxmq %s\ncommit: %s\ndate:   %s\ngo:     %s\n", v.Version, v.Commit, v.Date, v.GoVersion)
	return nil
}
