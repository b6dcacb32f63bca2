package limiter

// window counts events over a sliding window made of slots consecutive
// sub-windows ("slots"), each a fixed slice of time: the count is exact to
// within one slot's length at the window's old edge, which is what makes
// it slide rather than reset at a boundary (where a fixed window lets
// twice its budget through). Twelve 16-bit counters keep an entry small:
// budgets are far below 65,535.
const slots = 12

type window struct {
	count [slots]uint16
	// at is the slot number (time since the limiter's start divided by
	// the slot length) of the newest slot; the newest slot is
	// count[at%slots].
	at int64
}

// advance moves the window to slot now, zeroing the slots that fell out.
func (w *window) advance(now int64) {
	if now <= w.at {
		return
	}
	if now-w.at >= slots {
		w.count = [slots]uint16{}
	} else {
		for s := w.at + 1; s <= now; s++ {
			w.count[s%slots] = 0
		}
	}
	w.at = now
}

// sum is the number of events in the window ending at slot now. It only
// reads the window: a known-good login checks its pair's budget without
// writing the entry's cache line (docs/performance.md, "Brute-force
// defence").
func (w *window) sum(now int64) int {
	if now-w.at >= slots {
		return 0
	}
	n := 0
	for _, c := range w.count {
		n += int(c)
	}
	// Slot s > w.at would reuse the counter of slot s-slots, which has
	// slid out of the window ending at now.
	for s := w.at + 1; s <= now; s++ {
		n -= int(w.count[s%slots])
	}
	return n
}

// add counts one event at slot now.
func (w *window) add(now int64) {
	w.advance(now)
	if w.at-now >= slots {
		// Older than the window (an attempt that lasted longer than
		// it): not counted, rather than counted in a newer slot.
		return
	}
	if c := &w.count[now%slots]; *c < ^uint16(0) {
		*c++
	}
}

// remove takes back one event counted at slot at, if that slot is still in
// the window (a reservation given back after a success).
func (w *window) remove(at int64) {
	if at > w.at || w.at-at >= slots {
		return
	}
	if c := &w.count[at%slots]; *c > 0 {
		*c--
	}
}
