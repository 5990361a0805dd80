// Package storetest is the behaviour suite every inbox.Store must pass.
//
// A backend's tests call Run with a factory that opens a fresh, empty store:
//
//	func TestStore(t *testing.T) {
//		storetest.Run(t, func(t *testing.T, opts inbox.Options) inbox.Store {
//			s, err := pebblestore.Open(t.TempDir(), opts)
//			if err != nil {
//				t.Fatal(err)
//			}
//			t.Cleanup(func() {
//				if err := s.Close(); err != nil && !errors.Is(err, inbox.ErrClosed) {
//					t.Error(err)
//				}
//			})
//			return s
//		})
//	}
//
// The suite checks only what the inbox.Store contract promises, plus the id
// format every store shares: a Message.ID is an unsigned 64-bit integer in
// decimal, compared as an integer. Subtests do not run in parallel with each
// other, so a factory may share one server between them as long as each
// store it returns is empty (for example by a key prefix per call).
package storetest
