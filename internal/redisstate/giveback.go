package redisstate

import (
	"context"
	"errors"
	"sync"
)

// Held give-backs (docs/scale-out.md, "Brute-force budgets"). An attempt
// is counted in Redis when it arrives and given back when it succeeds or
// ends undecided. When the breaker opens between the two, the give-back
// cannot be sent; dropped, it would stay in Redis as a failure, and a
// user whose logins kept meeting short outages (an overloaded host whose
// calls time out) would be refused with the right password once her
// pair's budget filled with give-backs that never arrived. So an end that
// was not sent because the breaker was open is held, and sent when Redis
// answers again. Only those: a call that was sent and got no answer in
// time may have run, and sending its give-backs again would take another
// attempt's count away (an error towards letting guesses through), so
// they are dropped as before.

// errNotSent marks a call that was not made because the breaker was open.
var errNotSent = errors.New("not sent while the breaker is open")

// maxHeldGiveBacks bounds the held ends; beyond it they are dropped
// (counted in Stats().DroppedGiveBacks).
const maxHeldGiveBacks = 4096

// heldGiveBacks are the ends of attempts held while the breaker is open.
type heldGiveBacks struct {
	mu      sync.Mutex
	items   []finishItem
	dropped int64
}

// givesBack reports whether an end takes a count back (a success or an
// undecided attempt): a failure's end only notes its password's hash, and
// its count stays where it should.
func (it finishItem) givesBack() bool {
	o, _ := it.args[0].(string)
	return o == "S" || o == "U"
}

// hold keeps the give-backs among items, which were not sent.
func (h *heldGiveBacks) hold(items []finishItem) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, it := range items {
		switch {
		case !it.givesBack():
		case len(h.items) < maxHeldGiveBacks:
			h.items = append(h.items, it)
		default:
			h.dropped++
		}
	}
}

// take empties the held ends and returns them.
func (h *heldGiveBacks) take() []finishItem {
	h.mu.Lock()
	defer h.mu.Unlock()
	items := h.items
	h.items = nil
	return items
}

func (h *heldGiveBacks) stats() (held int, dropped int64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.items), h.dropped
}

// sendFinishesOrHold is sendFinishes, holding the give-backs of a call
// that was not made.
func (c *Client) sendFinishesOrHold(ctx context.Context, items []finishItem) error {
	err := c.sendFinishes(ctx, items)
	if errors.Is(err, errNotSent) {
		c.held.hold(items)
	}
	return err
}

// sendHeld sends the held give-backs, once the breaker closed. Those a
// new outage keeps from being sent are held again.
func (c *Client) sendHeld(ctx context.Context) {
	items := c.held.take()
	for len(items) > 0 && ctx.Err() == nil {
		n := min(len(items), maxFinishBatch)
		err := c.sendFinishesOrHold(ctx, items[:n])
		items = items[n:]
		if errors.Is(err, ErrUnavailable) {
			c.held.hold(items)
			return
		}
	}
}
