//go:build race

package broker_test

// raceBuild: the race detector's instrumentation enlarges every stack
// frame, so tests that measure goroutine stacks adjust.
const raceBuild = true
