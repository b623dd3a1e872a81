//go:build linux

package evloop

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestYieldWakesNoOtherThread: a loop's yield, due every yieldEvery, must
// not wake the thread of the spare P. runtime.Gosched does (it queues the
// goroutine globally and wakes an idle P to find it): a futex wake, a
// spin and a futex wait on another core at every yield. The test does
// what a lightly loaded loop does, 100 times: a raw epoll_wait that holds
// the P (1 ms, nothing ready), then a yield. It counts the voluntary
// context switches of every thread of the process, less the one each wait
// makes: each wakeup of an idle thread ends in one. With Gosched there
// are about one more per yield; what remains with yield is sysmon at its
// 10 ms pace. (All threads: the goroutine may move to another one once.)
func TestYieldWakesNoOtherThread(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(2))
	const yields = 100
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(epfd)
	var events [1]unix.EpollEvent
	done := make(chan int)
	go func() {
		rawEpollWait(epfd, events[:], 20) // let the spare thread settle asleep
		before := voluntarySwitches(t)
		for range yields {
			rawEpollWait(epfd, events[:], 1)
			yield()
		}
		done <- voluntarySwitches(t) - before - yields
	}()
	got := <-done
	t.Logf("%d yields: %d voluntary switches besides the waits", yields, got)
	if got > yields/2 {
		t.Errorf("%d yields woke other threads %d times, want at most %d", yields, got, yields/2)
	}
}

// voluntarySwitches sums voluntary_ctxt_switches over the process's threads.
func voluntarySwitches(t *testing.T) int {
	t.Helper()
	paths, err := filepath.Glob("/proc/self/task/*/status")
	if err != nil || len(paths) == 0 {
		t.Errorf("threads: %v", err) // not Fatal: called off the test's goroutine
		return 0
	}
	sum := 0
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the thread exited
		}
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				sum += n
			}
		}
	}
	return sum
}
