package dovecot

import (
	"os"
	"sync/atomic"
)

// newCounter returns a generator of distinct CPIDs for this process: the
// pid in the low bits for the first client, then unique values above it.
func newCounter() func() uint32 {
	var n atomic.Uint32
	base := uint32(os.Getpid())
	return func() uint32 {
		i := n.Add(1) - 1
		if i == 0 {
			return base
		}
		return base + i<<22
	}
}
