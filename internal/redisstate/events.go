package redisstate

import (
	"context"
	"encoding/json"
	"time"

	"github.com/redis/go-redis/v9"
)

// subscribe listens to the announcements until ctx ends. go-redis
// re-subscribes by itself after a broken connection (its health check
// pings every second); each subscription confirmation on the inval
// channel empties the local cache, because flushes announced while the
// connection was down were missed (docs/scale-out.md, "Cache: L1, generations, L2").
// The first confirmation does too: entries made before it could not have
// heard of any flush.
func (c *Client) subscribe(ctx context.Context) {
	ps := c.rdb.Subscribe(ctx, c.keys.inval(), c.keys.events())
	defer ps.Close()
	ch := ps.ChannelWithSubscriptions(
		redis.WithChannelHealthCheckInterval(time.Second),
		redis.WithChannelPingTimeout(max(4*c.o.CallTimeout, 200*time.Millisecond)),
		redis.WithChannelReconnectTimeout(time.Second),
		redis.WithChannelSendTimeout(time.Second),
	)
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-ch:
			if !ok {
				return
			}
			c.handle(m)
		}
	}
}

// handle applies one subscription event or message.
func (c *Client) handle(m any) {
	ca, l := c.attached()
	switch m := m.(type) {
	case *redis.Subscription:
		if m.Kind == "subscribe" && m.Channel == c.keys.inval() {
			c.stats.resubscribes.Add(1)
			if ca != nil {
				ca.Invalidated(nil, true)
			}
		}
	case *redis.Message:
		c.stats.messages.Add(1)
		switch m.Channel {
		case c.keys.inval():
			var msg invalMsg
			if err := json.Unmarshal([]byte(m.Payload), &msg); err != nil {
				c.stats.dropped.Add(1)
				return
			}
			if msg.Origin != c.origin && ca != nil {
				ca.Invalidated(msg.Users, msg.All)
			}
		case c.keys.events():
			if l != nil {
				c.onEvent(m.Payload, l)
			}
		}
	}
}
