// Package testkit holds the helpers that tests of every tierlb package
// share, so that each exists once: an address nothing listens on, and
// waiting for a condition with a deadline instead of sleeping.
//
//	addr := testkit.ClosedPort(t)
//	testkit.Eventually(t, 5*time.Second, "the backend to drain", func() bool { ... })
package testkit
