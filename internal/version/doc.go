// Package version says which build of inboxmq is running: the version
// (from `git describe`), the commit, the build date and the Go version.
//
// The Makefile sets them at link time with -ldflags -X (see LDFLAGS there);
// a plain `go build` or `go install` leaves them empty, and Get falls back
// to what the Go toolchain stamped into the binary (vcs.revision, vcs.time,
// vcs.modified) and to "dev". Everything here is read-only after the
// program starts and safe for concurrent use.
package version
