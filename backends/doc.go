// Package backends holds what the data path balances over: the runtime
// Backend objects of each service, the immutable Pool snapshots built from
// them, the balancing policies that order a pool for one connection, and the
// providers (static lists, Docker) that tell a service which backends exist.
//
// A Set is the per-service owner. Providers hand it full lists of Specs; health
// checks, passive failure tracking and the admin API change backend states.
// After every change the Set builds a new Pool (only the backends that may take
// new connections, in the lowest priority group that has one up, with slow
// start applied to their weights) and swaps it in atomically, so the accept
// path reads it with one atomic load and no lock:
//
//	set := backends.NewSet("app", backends.RoundRobin, backends.SetOptions{})
//	set.Update([]backends.Spec{{ID: "10.0.0.5:8080", Address: "10.0.0.5:8080", Weight: 1}})
//	var buf [3]*backends.Backend
//	order := set.Pool().Order(clientAddr, buf[:0]) // first choice, then failover order
package backends
