//go:build linux

package schemes

import "syscall"

// processCPUNanos is the CPU time of the whole test process (all threads),
// for benchmarks whose work may run on several goroutines (argon2 lanes).
func processCPUNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
