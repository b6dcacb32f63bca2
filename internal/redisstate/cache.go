package redisstate

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/yield"
)

// The second-level cache. A user's generation is two counters: the epoch
// (<p>c:epoch, raised by a flush of everything) and the user's own
// (<p>c:{u:<user>}:g, raised by a flush of the user). A record carries
// the generation it was written under and counts only while that is the
// user's generation: a flush is one INCR, never a scan.
//
// The epoch starts at a random value, written when Redis has none: after
// Redis lost its data (a restart without persistence), every generation a
// process remembers is unknown to it, so no entry fetched before the loss
// can pass for a current one.

// saveScript writes a record (KEYS[2]) only while the user's generation
// (KEYS[1]) is still ARGV[1]; ARGV[2] the record, ARGV[3] its lifetime in
// ms.
var saveScript = redis.NewScript(`
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return 1
`)

// genLifetime is how long a user's generation is kept after its last
// flush: far longer than any record's lifetime, so a record can never
// outlive the generation it depends on.
const genLifetime = 30 * 24 * time.Hour

// cacheStore is the Client as a cache.Shared.
type cacheStore struct{ c *Client }

// Cache returns the client as the cache's shared store.
func (c *Client) Cache() cache.Shared { return cacheStore{c} }

// readGen reads the flush sequence, the epoch and the user's counter,
// and with rec a record, in one round trip: on a single server one MGET
// (atomic), batched with other logins' (mgetLoop). In a Cluster, where the
// keys live in different slots, the sequence is read first and the rest
// then in one pipeline, each GET to its node: read in that order, a
// sequence that a flush raised comes with the generations it raised.
func (s cacheStore) readGen(ctx context.Context, op op, user, rec string) (cache.Gen, []byte, error) {
	keys := []string{s.c.keys.flushSeq(), s.c.keys.epoch(), s.c.keys.userGen(user)}
	if rec != "" {
		keys = append(keys, rec)
	}
	var vals []any
	var err error
	if s.c.cluster {
		err = s.c.call(ctx, op, s.c.o.CallTimeout, func(ctx context.Context) error {
			seq, err := s.c.pipelinedGets(ctx, keys[:1])
			if err != nil {
				return err
			}
			vals, err = s.c.pipelinedGets(ctx, keys[1:])
			vals = append(seq, vals...)
			return err
		})
	} else {
		vals, err = s.c.mgetBatched(ctx, op, keys)
	}
	var g cache.Gen
	if err != nil {
		return g, nil, err
	}
	if g.Seq, err = counter(vals[0]); err != nil {
		return g, nil, err
	}
	if g.Epoch, err = counter(vals[1]); err != nil {
		return g, nil, err
	}
	if g.User, err = counter(vals[2]); err != nil {
		return g, nil, err
	}
	var data []byte
	if len(vals) > 3 {
		if v, ok := vals[3].(string); ok {
			data = []byte(v)
		}
	}
	if vals[0] == nil || vals[1] == nil {
		err = s.c.call(ctx, op, s.c.o.CallTimeout, func(ctx context.Context) error {
			var err error
			g.Epoch, err = s.startEpoch(ctx)
			return err
		})
	}
	return g, data, err
}

// pipelinedGets GETs keys in one pipeline; a missing key is nil.
func (c *Client) pipelinedGets(ctx context.Context, keys []string) ([]any, error) {
	pipe := c.rdb.Pipeline()
	cmds := make([]*redis.StringCmd, len(keys))
	for i, k := range keys {
		cmds[i] = pipe.Get(ctx, k)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	vals := make([]any, len(keys))
	for i, cmd := range cmds {
		if v, err := cmd.Result(); err == nil {
			vals[i] = v
		}
	}
	return vals, nil
}

// mgetItem is one caller's keys in a batched MGET.
type mgetItem struct {
	keys []string
	done chan mgetResult
}

type mgetResult struct {
	vals []any
	err  error
}

// mgetBatched hands keys to mgetLoop and waits for their values, at most
// the call deadline (and a little), like reserveBatched.
func (c *Client) mgetBatched(ctx context.Context, op op, keys []string) ([]any, error) {
	if c.down.Load() {
		c.stats.skipped.get(op).Add(1)
		return nil, fmt.Errorf("%s: %w", op, ErrUnavailable)
	}
	it := mgetItem{keys: keys, done: make(chan mgetResult, 1)}
	wait := time.NewTimer(c.o.CallTimeout + 5*time.Millisecond)
	defer wait.Stop()
	select {
	case c.mgetQ <- it:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		return nil, fmt.Errorf("%s: %w: queue full", op, ErrUnavailable)
	}
	select {
	case r := <-it.done:
		return r.vals, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-wait.C:
		err := fmt.Errorf("%s: no answer in time", op)
		c.trip(op, err)
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
}

// maxMGetBatch bounds the callers of one batched MGET.
const maxMGetBatch = 128

// mgetLoop runs the queued reads, as many as are waiting, as one MGET,
// until ctx ends.
func (c *Client) mgetLoop(ctx context.Context) {
	batch := make([]mgetItem, 0, maxMGetBatch)
	for {
		select {
		case <-ctx.Done():
			return
		case it := <-c.mgetQ:
			batch = append(batch[:0], it)
		}
		// One yield: the logins that are about to ask join this batch
		// instead of each starting one of their own (when any waits to
		// run: package yield).
		yield.Others()
	fill:
		for len(batch) < maxMGetBatch {
			select {
			case it := <-c.mgetQ:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		var keys []string
		for _, it := range batch {
			keys = append(keys, it.keys...)
		}
		var vals []any
		err := c.call(ctx, opGeneration, c.o.CallTimeout, func(ctx context.Context) error {
			var err error
			vals, err = c.rdb.MGet(ctx, keys...).Result()
			return err
		})
		if err == nil && len(vals) != len(keys) {
			err = fmt.Errorf("redis: MGET answered %d of %d values", len(vals), len(keys))
		}
		off := 0
		for _, it := range batch {
			r := mgetResult{err: err}
			if err == nil {
				r.vals = vals[off : off+len(it.keys)]
			}
			off += len(it.keys)
			it.done <- r
		}
	}
}

// startEpoch writes a random epoch and a random flush sequence where Redis
// has none, and returns the epoch Redis has then. A sequence that starts
// at random after Redis lost its data matches no sequence a process
// remembers.
func (s cacheStore) startEpoch(ctx context.Context) (uint64, error) {
	for _, k := range []string{s.c.keys.flushSeq(), s.c.keys.epoch()} {
		var b [8]byte
		_, _ = rand.Read(b[:])
		v := binary.BigEndian.Uint64(b[:]) >> 2 // room for INCR
		if err := s.c.rdb.SetNX(ctx, k, v, 0).Err(); err != nil {
			return 0, err
		}
	}
	return uintOf(s.c.rdb.Get(ctx, s.c.keys.epoch()))
}

// counter reads a counter from MGET's answer; a missing key is 0.
func counter(v any) (uint64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: counter %q: %w", s, err)
	}
	return n, nil
}

// uintOf reads a counter; a missing key is 0.
func uintOf(cmd *redis.StringCmd) (uint64, error) {
	v, err := cmd.Result()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("redis: counter %q: %w", v, err)
	}
	return n, nil
}

// Generation implements cache.Shared.
func (s cacheStore) Generation(ctx context.Context, user string) (cache.Gen, error) {
	g, _, err := s.readGen(ctx, opGeneration, user, "")
	return g, err
}

// Load implements cache.Shared.
func (s cacheStore) Load(ctx context.Context, user, key string) (cache.Record, bool, cache.Gen, error) {
	rk := s.c.keys.record(user, key)
	g, data, err := s.readGen(ctx, opLoad, user, rk)
	if err != nil || data == nil {
		return cache.Record{}, false, g, err
	}
	rec, rg, err := s.c.codec().decode(rk, data)
	if err != nil || rg.Epoch != g.Epoch || rg.User != g.User {
		// Unreadable (another secret, a newer format) or of an older
		// generation: as if absent.
		return cache.Record{}, false, g, nil
	}
	return rec, true, g, nil
}

// Save implements cache.Shared.
func (s cacheStore) Save(ctx context.Context, user, key string, g cache.Gen, rec cache.Record) error {
	rk := s.c.keys.record(user, key)
	data, ok := s.c.codec().encode(rk, rec, g)
	if !ok {
		return nil // a plaintext password and no secret to seal it with
	}
	// Kept twice its TTL: an expired record still answers when the
	// backend cannot (docs/architecture.md §Cache semantics).
	life := 2 * rec.TTL.Milliseconds()
	return s.c.call(ctx, opSave, s.c.o.CallTimeout, func(ctx context.Context) error {
		return saveScript.Run(ctx, s.c.rdb, []string{s.c.keys.userGen(user), rk}, g.User, data, life).Err()
	})
}

// invalMsg is an announcement on the inval channel.
type invalMsg struct {
	Origin string   `json:"o"`
	All    bool     `json:"a,omitempty"`
	Users  []string `json:"u,omitempty"`
}

// Invalidate implements cache.Shared. When Redis cannot be reached the
// flush waits in the outbox and goes out once it can; the error says so.
func (s cacheStore) Invalidate(ctx context.Context, users []string) error {
	err := s.c.invalidate(ctx, users)
	if err != nil {
		s.c.outbox.add(users)
		return fmt.Errorf("cache flush done here only, the other processes get it once Redis answers: %w", err)
	}
	return nil
}

// invalidate raises the generations and announces the flush. With
// Sentinel it waits (briefly) for a replica to have the new generations,
// so that a failover does not bring back what was flushed.
func (c *Client) invalidate(ctx context.Context, users []string) error {
	return c.call(ctx, opInvalidate, 4*c.o.CallTimeout, func(ctx context.Context) error {
		return c.sendInvalidate(ctx, users)
	})
}

// sendInvalidate is invalidate's work, without the breaker. The flush
// sequence is raised only after the generations (readGen, seq.go): on a
// single server in the same transaction; in a Cluster, where they live on
// other nodes and a pipeline's order across nodes is not kept, once the
// generations' pipeline has answered. A sequence Redis lost starts again
// at random, never at 1, which a process may remember from before.
func (c *Client) sendInvalidate(ctx context.Context, users []string) error {
	msg, _ := json.Marshal(invalMsg{Origin: c.origin, All: len(users) == 0, Users: users})
	var pipe redis.Pipeliner
	if c.cluster {
		pipe = c.rdb.Pipeline()
	} else {
		pipe = c.rdb.TxPipeline()
	}
	if len(users) == 0 {
		pipe.Incr(ctx, c.keys.epoch())
	}
	for _, u := range users {
		pipe.Incr(ctx, c.keys.userGen(u))
		pipe.PExpire(ctx, c.keys.userGen(u), genLifetime)
	}
	if c.cluster {
		if _, err := pipe.Exec(ctx); err != nil {
			return err
		}
		pipe = c.rdb.Pipeline()
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	pipe.SetNX(ctx, c.keys.flushSeq(), binary.BigEndian.Uint64(b[:])>>2, 0)
	pipe.Incr(ctx, c.keys.flushSeq())
	pipe.Publish(ctx, c.keys.inval(), msg)
	if _, err := pipe.Exec(ctx); err != nil {
		return err
	}
	if c.sentinel {
		_ = c.rdb.Do(ctx, "WAIT", 1, c.o.CallTimeout.Milliseconds()).Err()
	}
	return nil
}

// outbox holds the flushes made while Redis could not be reached.
type outbox struct {
	mu    sync.Mutex
	all   bool
	users map[string]struct{}
}

// maxOutboxUsers bounds the outbox; beyond it, a flush of everything
// stands in for the users.
const maxOutboxUsers = 10000

func (o *outbox) add(users []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(users) == 0 || o.all {
		o.all, o.users = true, nil
		return
	}
	if o.users == nil {
		o.users = map[string]struct{}{}
	}
	for _, u := range users {
		o.users[u] = struct{}{}
	}
	if len(o.users) > maxOutboxUsers {
		o.all, o.users = true, nil
	}
}

func (o *outbox) size() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.all {
		return 1
	}
	return len(o.users)
}

// take empties the outbox: all, or the users (nil: nothing to deliver).
func (o *outbox) take() (all bool, users []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	all = o.all
	for u := range o.users {
		users = append(users, u)
	}
	o.all, o.users = false, nil
	return all, users
}

// deliverOutbox sends the flushes made while Redis was away, bypassing
// the (still open) breaker; on failure they stay in the outbox.
func (c *Client) deliverOutbox(ctx context.Context) error {
	all, users := c.outbox.take()
	if !all && len(users) == 0 {
		return nil
	}
	if all {
		users = nil
	}
	ictx, cancel := context.WithTimeout(ctx, 4*c.o.CallTimeout)
	defer cancel()
	err := c.sendInvalidate(ictx, users)
	if err != nil {
		c.outbox.add(users) // users nil: everything, as taken
	}
	return err
}
