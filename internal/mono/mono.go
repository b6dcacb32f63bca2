// Package mono reads the monotonic clock alone. time.Now reads the wall
// clock and the monotonic clock (two clock_gettime calls); a duration
// needs only the second. At one login every few microseconds the reads
// add up: a passwd-file {PLAIN} login took eleven, about 5 % of its CPU
// in profiles (docs/performance.md, "What is left on the hot path").
package mono

import "time"

// base carries a monotonic reading: time.Since on it reads the monotonic
// clock only.
var base = time.Now()

// Now is the time on the monotonic clock, as a duration since the
// package's start: only differences between two values mean anything.
func Now() time.Duration { return time.Since(base) }

// Since is the time elapsed since t, a value of Now.
func Since(t time.Duration) time.Duration { return Now() - t }
