//go:build !linux

package limiter

// advise does nothing where huge pages are not asked for this way: the
// tables are then on the system's ordinary pages.
func advise([]entry) {}
