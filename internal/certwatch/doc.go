// Package certwatch serves a TLS server's certificate, and optionally the
// CAs its clients' certificates must chain to, from PEM files that are read
// again when they change, so a certificate can be rotated without a
// restart and without dropping a connection.
//
// A Server's tls.Config hands every new handshake the files' current
// contents through GetConfigForClient (GetCertificate's sibling, which can
// also swap the client CA pool); connections already established keep the
// session they negotiated. Reload re-reads the files (SIGHUP calls it);
// Watch also calls it when fsnotify reports a change in a directory that
// holds one of the files. Directories are watched rather than files so that
// an atomic rename over a file, or the symlink swap Kubernetes uses to
// update a mounted secret, is seen too. A reload that fails (a missing
// file, a key that does not match its certificate, a bundle with no
// certificate) keeps what was loaded before and says which path was wrong.
//
// A Server is safe for concurrent use.
package certwatch
