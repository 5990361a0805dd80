// Package redistest runs real redis-server processes for tests: a server
// on a free loopback port with its own directory, which a test may kill
// and restart (with AOF, it keeps what it acknowledged), and a Redis
// Cluster of masters built with redis-cli.
//
// redis-server, and redis-cli for clusters, must be on PATH; `make deps`
// installs them. When they are missing the helpers fail the test with a
// message saying so: tests never skip silently.
//
// A Server or Cluster is safe for concurrent use; Kill and Restart are
// meant to be called from the test's goroutine.
package redistest
