//go:build !linux

package schemes

func threadCPUNanos() int64 { return -1 }

func processCPUNanos() int64 { return -1 }
