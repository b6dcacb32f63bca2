package load

import (
	"time"

	"golang.org/x/sys/unix"
)

// preciseSleeps asks the kernel not to defer this thread's timer
// wake-ups (its timer slack is 50 µs by default), so that the pacer's
// sleeps end when asked.
func preciseSleeps() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0)
}

// defaultSleeps gives the thread the default timer slack back (0 asks
// for the default).
func defaultSleeps() {
	_ = unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
}

// sleepFor blocks this OS thread for d with nanosleep(2): the kernel's
// high-resolution timer, where the Go runtime's timers may wake a
// millisecond late in an idle process. An interrupted sleep just ends
// early; the pacer looks at the clock again.
func sleepFor(d time.Duration) {
	ts := unix.NsecToTimespec(int64(d))
	_ = unix.Nanosleep(&ts, nil)
}
