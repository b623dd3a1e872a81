// Package testkit holds the helpers that tests of every tierlb package
// share, so that each exists once: an address nothing listens on,
// waiting for a condition with a deadline instead of sleeping, a
// self-signed TLS certificate for a test's own TLS servers, a UDP server
// that answers each datagram as the test says, a binary built once per
// package and run with its log collected, and the pace of every load loop:
// bounded in count, time and rate, so that no test runs its own client out
// of local ports on a fast machine.
//
//	addr := testkit.ClosedPort(t)
//	testkit.Eventually(t, 5*time.Second, "the backend to drain", func() bool { ... })
//	load := testkit.StartLoad(t, 4, testkit.Pace{Rate: testkit.SustainedRate, Count: 60_000, Within: 5 * time.Minute}, dialOnce)
package testkit
