package shallow

// Run calls f on a new goroutine and returns when f has returned, so the
// stack f needs is never the caller's. Everything f wrote is visible to
// the caller afterwards (the channel close orders it). A panic in f is not
// recovered: it ends the program, as it would in the caller.
func Run(f func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
}
