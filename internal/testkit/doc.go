// Package testkit holds the helpers that tests of every tierlb package
// share, so that each exists once: an address nothing listens on,
// waiting for a condition with a deadline instead of sleeping, and a
// self-signed TLS certificate for a test's own TLS servers.
//
//	addr := testkit.ClosedPort(t)
//	testkit.Eventually(t, 5*time.Second, "the backend to drain", func() bool { ... })
package testkit
