//go:build linux

package schemes

import "syscall"

// threadCPUNanos is the CPU time consumed by the calling OS thread (the
// caller locks itself to its thread). CPU time, unlike wall time, is not
// inflated when other processes compete for the cores.
func threadCPUNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(1 /* RUSAGE_THREAD */, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// processCPUNanos is the CPU time of the whole test process (all threads),
// for benchmarks whose work may run on several goroutines (argon2 lanes).
func processCPUNanos() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return -1
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
