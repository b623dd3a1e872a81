package testkit

import (
	"runtime"
)

// LiveHeap returns the bytes of live heap that build's result keeps: the
// heap after a collection with the result reachable, less the heap after a
// collection before build ran. It counts bytes, not time, so a bound on it
// holds on a slow or busy machine; run nothing else in parallel that
// allocates and keeps memory (no t.Parallel beside it).
func LiveHeap(build func() any) int64 {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	kept := build()
	runtime.GC()
	runtime.ReadMemStats(&after)
	runtime.KeepAlive(kept)
	return int64(after.HeapAlloc) - int64(before.HeapAlloc)
}
