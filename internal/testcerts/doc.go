// Package testcerts makes certificate authorities and the certificates
// they sign, for tests that run real TLS servers and clients: ECDSA P-256
// keys, valid from an hour ago for a day, server certificates for
// 127.0.0.1, ::1 and localhost. Nothing here is fit for production.
// A CA is safe for concurrent use.
package testcerts
