package testenv

import (
	"testing"

	"github.com/authd-project/authd/internal/realserver"
)

// RedisOptions configures the Redis starters. Zero values mean the
// defaults.
type RedisOptions struct {
	// Password, when set, is requirepass (and masterauth).
	Password string
	// TLS, when set, makes StartRedis's server also serve TLS (its
	// TLSAddr) with a certificate for 127.0.0.1 and localhost from this CA.
	TLS *CA
}

// Redis is a private redis-server (realserver.Redis): loopback on a free
// port, its own directory, persistence off. Kill, Stop, Pause (SIGSTOP)
// and Resume are realserver's; Restart takes the test.
type Redis struct {
	*realserver.Redis
}

// StartRedis starts a standalone redis-server, ready in ≈40 ms, stopped
// at cleanup.
func StartRedis(t testing.TB, opts RedisOptions) *Redis {
	t.Helper()
	Require(t, "redis-server")
	dir := Dir(t)
	r, err := realserver.StartRedis(t.Context(), realserver.RedisOptions{Instance: instance(dir), Password: opts.Password,
		TLS: opts.TLS.serverFiles(t, dir)})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(r.Stop)
	logOnFailure(t, r.Log)
	return &Redis{r}
}

// Restart starts the server again on the same port (empty: nothing is
// persisted) and waits until it answers.
func (r *Redis) Restart(t testing.TB) {
	t.Helper()
	if err := r.Redis.Restart(t.Context()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// StartRedisSentinel starts a master, a replica and three sentinels
// (realserver.RedisSentinel), ready in ≈2.2 s once every sentinel knows
// the others; everything is stopped at cleanup. A client is given
// Addrs (the sentinels) and MasterName.
func StartRedisSentinel(t testing.TB, opts RedisOptions) *realserver.RedisSentinel {
	t.Helper()
	Require(t, "redis-server", "redis-sentinel")
	s, err := realserver.StartRedisSentinel(t.Context(), realserver.RedisOptions{Instance: instance(Dir(t)), Password: opts.Password})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(s.Stop)
	logs := []string{s.Master.Log, s.Replica.Log}
	for _, sn := range s.Sentinels {
		logs = append(logs, sn.Log)
	}
	logOnFailure(t, logs...)
	return s
}

// StartRedisCluster starts a Redis Cluster of three masters
// (realserver.RedisCluster), ready in ≈2.1 s, stopped at cleanup. A
// client is given Addrs.
func StartRedisCluster(t testing.TB, opts RedisOptions) *realserver.RedisCluster {
	t.Helper()
	Require(t, "redis-server", "redis-cli")
	c, err := realserver.StartRedisCluster(t.Context(), realserver.RedisOptions{Instance: instance(Dir(t)), Password: opts.Password})
	if err != nil {
		startFailed(t, err)
	}
	t.Cleanup(c.Stop)
	var logs []string
	for _, n := range c.Nodes {
		logs = append(logs, n.Log)
	}
	logOnFailure(t, logs...)
	return c
}
