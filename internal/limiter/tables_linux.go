package limiter

import (
	"unsafe"

	"golang.org/x/sys/unix"
)

// advise asks the kernel to back the whole huge pages inside table with
// huge pages (transparent huge pages in "madvise" mode, the default of
// many distributions, do so only for ranges advised so). An error (a
// kernel without them, or THP "never") changes nothing but the speed.
func advise(table []entry) {
	if len(table) == 0 {
		return
	}
	base := unsafe.Pointer(&table[0])
	start := (uintptr(base) + hugePage - 1) &^ (hugePage - 1)
	end := (uintptr(base) + uintptr(len(table)*entrySize)) &^ (hugePage - 1)
	if end <= start {
		return
	}
	b := unsafe.Slice((*byte)(unsafe.Add(base, start-uintptr(base))), end-start)
	_ = unix.Madvise(b, unix.MADV_HUGEPAGE)
	// Memory the heap used before is backed by small pages already,
	// which the advice alone would not change: collapse it now (Linux
	// 6.1 and later; before, only the pages first touched after the
	// advice are huge).
	_ = unix.Madvise(b, unix.MADV_COLLAPSE)
}
