// Package health decides which backends are fit for traffic: active checks
// (tcp, http, send-expect, docker) run by a per-service Monitor with rise and
// fall counting, and passive checks that eject a backend whose dials keep
// failing. Decisions go to the backends themselves (SetHealth, Eject), from
// which the Set builds the pools the data path reads.
//
//	checks := health.NewChecks() // one per process: every monitor's probes on one loop
//	m, err := health.NewMonitor(set, svc.Health, health.Options{Logger: log, Metrics: hm, Docker: health.DockerInspect{Client: cli}, Checks: checks})
//	if err != nil { ... } // every problem, keys named as in SPEC.md
//	observer := m.Passive()  // the proxy's DialObserver: dial outcomes feed the passive checks
//	err = m.Start(ctx)      // returns at once: the monitor keeps no goroutine
//	...
//	<-m.Done()              // after ctx ends: probers stopped, series removed
//	err = m.Reconfigure(newHealth) // on SIGHUP; a bad config keeps the old one
//
// A new backend is held down ("waiting for the first health check") until
// its first probe, which runs at once and alone decides its state; from then
// on it goes down after exactly Fall consecutive failures and up after
// exactly Rise consecutive passes. A backend that already carries
// connections when its prober starts is not held down (it would lose them
// under on_backend_down: close); its first probe still decides. A backend
// has one prober, which runs one probe at a time.
//
// Run(ctx) is Start plus a wait on Done, for an errgroup. A running monitor
// is called, not waited for: its set calls it after a change of membership
// (Set.OnChange), Reconfigure reconciles at once, and the end of ctx or of
// the check loop stops it from context.AfterFunc.
//
// The probes of every running monitor given the same Checks run on one
// check loop (loop_linux.go, shared_linux.go): a heap of probers by due time, and tcp and http probes as raw non-blocking
// sockets (wire_linux.go) waited for in one epoll set, so a probe costs no
// goroutine, timer or allocation. After its first probe a backend waits a
// random part of the interval, then the interval ±15%, so probes of
// backends that appeared together spread out over the interval.
//
// Passive ejections last fail_timeout; then the active verdict applies
// again. Each ejection asks the Monitor for an immediate probe, so that the
// verdict is fresh when the ejection ends.
package health
