//go:build !amd64 && !arm64

package limiter

import "unsafe"

// prefetch does nothing where no instruction for it is wired up: the
// entry is then read when Start needs it, as it would be without a hint.
func prefetch(unsafe.Pointer) {}
