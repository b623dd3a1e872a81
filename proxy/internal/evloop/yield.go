//go:build linux

package evloop

import _ "unsafe" // go:linkname

// yield passes through Go's scheduler like runtime.Gosched, which is what
// keeps sysmon from preempting a loop, but leaves the loop on its own P's
// run queue. Gosched puts it on the global queue and wakes the thread of
// an idle P (the spare one) to look for it: a futex wake, a spin and a
// futex wait on another core, for nothing, every yieldEvery.
//
// runtime.goyield is one of the runtime's functions kept open to
// go:linkname on purpose (its signature is fixed: go.dev/issue/67401).
//
//go:linkname yield runtime.goyield
func yield()
