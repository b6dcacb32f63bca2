package daemon

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"reflect"
	"sync"

	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/metrics"
	"github.com/authd-project/authd/internal/redisstate"
)

// The state shared with other authd processes through Redis (redis { },
// docs/scale-out.md). One client serves the daemon across reloads while
// its settings and files stay the same, so a reload neither reconnects
// nor resets its counters; each instance attaches its own cache to it.

// sharedRedis is a running redisstate.Client and what it was built from.
type sharedRedis struct {
	cfg     config.Redis
	files   [][]byte // the password, sentinel password and secret files' contents
	client  *redisstate.Client
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	stopped sync.Once
}

// redisFor returns the shared-state client for cfg: the running one when
// nothing changed, a new (started) one otherwise, nil without redis { }.
func (d *daemon) redisFor(cfg config.Redis) (*sharedRedis, error) {
	if !cfg.Enabled() {
		return nil, nil
	}
	files, err := readRedisFiles(cfg)
	if err != nil {
		return nil, err
	}
	if cur := d.cur; cur != nil && cur.redis != nil && sameRedis(cur.redis, cfg, files) {
		return cur.redis, nil
	}
	o := redisstate.Options{
		Addrs: cfg.Addresses, SentinelMaster: cfg.SentinelMaster, Username: cfg.Username,
		Password: string(files[0]), SentinelPassword: string(files[1]), Secret: files[2],
		KeyPrefix: cfg.KeyPrefix, CallTimeout: cfg.Timeout, Log: d.log.With("component", "redis"),
	}
	if cfg.TLS {
		if o.TLS, err = redisTLS(cfg); err != nil {
			return nil, err
		}
	}
	c, err := redisstate.New(o)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.Pos, err)
	}
	r := &sharedRedis{cfg: cfg, files: files, client: c}
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel = cancel
	r.wg.Go(func() { c.Run(ctx) })
	return r, nil
}

// stop ends the client's goroutines and closes its connections.
func (r *sharedRedis) stop() {
	if r == nil {
		return
	}
	r.stopped.Do(func() {
		r.cancel()
		r.wg.Wait()
		_ = r.client.Close()
	})
}

func sameRedis(r *sharedRedis, cfg config.Redis, files [][]byte) bool {
	a, b := r.cfg, cfg
	a.Pos, b.Pos = config.Pos{}, config.Pos{}
	if !reflect.DeepEqual(a, b) {
		return false
	}
	for i := range files {
		if !bytes.Equal(r.files[i], files[i]) {
			return false
		}
	}
	return true
}

// readRedisFiles reads the password, sentinel password and secret files
// (empty when not set), without their final newline.
func readRedisFiles(cfg config.Redis) ([][]byte, error) {
	out := make([][]byte, 3)
	for i, p := range []string{cfg.PasswordFile, cfg.SentinelPasswordFile, cfg.SecretFile} {
		if p == "" {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			// The path only: the error never quotes the file's content.
			return nil, fmt.Errorf("%s: redis: %w", cfg.Pos, err)
		}
		out[i] = bytes.TrimRight(b, "\r\n")
	}
	if len(out[2]) > 0 && len(out[2]) < 16 {
		return nil, fmt.Errorf("%s: redis: secret_file: at least 16 bytes, for a secret that cannot be guessed", cfg.Pos)
	}
	return out, nil
}

// redisTLS is the client's TLS configuration.
func redisTLS(cfg config.Redis) (*tls.Config, error) {
	t := &tls.Config{MinVersion: tls.VersionTLS12}
	if cfg.TLSCAFile != "" {
		pem, err := os.ReadFile(cfg.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("%s: redis: %w", cfg.Pos, err)
		}
		t.RootCAs = x509.NewCertPool()
		if !t.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: redis: tls_ca_file %s: no certificate", cfg.Pos, cfg.TLSCAFile)
		}
	}
	if cfg.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s: redis: client certificate: %w", cfg.Pos, err)
		}
		t.Certificates = []tls.Certificate{cert}
	}
	return t, nil
}

// attachRedis puts the shared cache behind inst's cache. The limiter,
// which may be the running instance's, is switched over in activate,
// once inst is live.
func (inst *instance) attachRedis(r *sharedRedis) {
	inst.redis = r
	if r == nil {
		return
	}
	inst.eng.Cache().SetShared(r.client.Cache(), cache.SharedOptions{DegradedTTL: r.cfg.DegradedCacheTTL})
}

// activate makes inst the one the shared state reports to: its cache gets
// the other processes' flushes, its limiter counts in the shared budgets
// (or alone again, without redis { }).
func (inst *instance) activate() {
	if inst.limiter != nil {
		if inst.redis != nil {
			inst.limiter.SetShared(inst.redis.client.Limiter(), inst.redis.client.PasswordKey())
		} else {
			inst.limiter.SetShared(nil, nil)
		}
	}
	if inst.redis == nil {
		return
	}
	var lim redisstate.Limiter
	if inst.limiter != nil {
		lim = inst.limiter
	}
	var ca redisstate.Cache
	if c := inst.eng.Cache(); c != nil {
		ca = c
	}
	inst.redis.client.Attach(ca, lim)
}

// clusterFlusher is the cache flush of CACHE-FLUSH, doveadm auth cache
// flush and gRPC FlushCache: here, and through Redis on every process.
type clusterFlusher struct {
	c     *cache.Cache
	inst  *instance
	daemn *daemon
}

// Flush implements dovecot.CacheFlusher and grpcserver.CacheFlusher.
func (f clusterFlusher) Flush(users []string) int {
	if f.inst.redis == nil {
		return f.c.Flush(users)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*f.inst.redis.cfg.Timeout)
	defer cancel()
	n, err := f.c.FlushShared(ctx, users)
	if err != nil {
		f.daemn.log.Warn("cache flushed here; the other authd processes get it once Redis answers", "users", len(users), "err", err)
	}
	return n
}

// flushEverywhere is SIGHUP's flush on the other processes: a reload
// starts with an empty cache here, and flushes theirs too.
func (d *daemon) flushEverywhere(inst *instance) {
	if inst.redis == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 4*inst.redis.cfg.Timeout)
	defer cancel()
	if err := inst.redis.client.Cache().Invalidate(ctx, nil); err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("reload: the other authd processes flush their cache once Redis answers", "err", err)
	}
}

// redisStats reads the shared state's counters (scrape time).
func (d *daemon) redisStats() (metrics.RedisStats, bool) {
	inst := d.live.Load()
	if inst == nil || inst.redis == nil {
		return metrics.RedisStats{}, false
	}
	st := inst.redis.client.Stats()
	out := metrics.RedisStats{Up: st.Up, Ops: redisstate.Ops(), Calls: st.Calls[:], Errors: st.Errors[:], Skipped: st.Skipped[:],
		Opened: st.Opened, Closed: st.Closed, Messages: st.Messages, Resubscribes: st.Resubscribes, Outbox: st.Outbox}
	sh := inst.eng.Cache().SharedStats()
	out.L2Hits, out.L2Misses, out.L1Dropped = sh.Hits, sh.Misses, sh.Dropped
	if inst.limiter != nil {
		out.ReplayPending = inst.limiter.PendingReplay()
	}
	return out, true
}
