// Package archtest holds the test that keeps docs/architecture.md true:
// its table of packages and layers against `go list` and the packages'
// imports. It has no code of its own.
package archtest
