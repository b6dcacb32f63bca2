//go:build !linux

package load

import "time"

// preciseSleeps has nothing to set outside Linux.
func preciseSleeps() {}

// defaultSleeps has nothing to restore outside Linux.
func defaultSleeps() {}

// sleepFor sleeps with the runtime's timer, which may wake up to a
// millisecond late; the send lag reports it.
func sleepFor(d time.Duration) { time.Sleep(d) }
