//go:build amd64 || arm64

package limiter

import "unsafe"

// prefetch asks the CPU to bring the cache line at p into its caches and
// goes on at once; it never faults, whatever p is (prefetch_*.s).
//
//go:noescape
func prefetch(p unsafe.Pointer)
