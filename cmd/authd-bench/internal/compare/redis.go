package compare

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"

	"github.com/authd-project/authd/internal/realserver"
)

// startRedisPair starts the two sides of a Redis scenario: authd alone
// (in the Dovecot side's place) and the same authd sharing its state
// through a private redis-server on loopback, with a shared secret so
// that even {PLAIN} entries reach the shared cache. The Redis server is
// stopped with the second authd.
func startRedisPair(ctx context.Context, o *Options, conf, dir string, sides [2]*Side,
	say func(string, ...any)) [2]*authServer {
	var servers [2]*authServer
	if s, err := startAuthd(ctx, o.Authd, filepath.Join(dir, "authd-alone"), conf); err != nil {
		sides[0].Status, _ = authdFailure(err)
		say("  authd alone: %v", err)
	} else {
		s.name = "authd"
		servers[0] = s
	}
	r, err := realserver.StartRedis(ctx, realserver.RedisOptions{Instance: instance(filepath.Join(dir, "redis"))})
	if err != nil {
		sides[1].Status = "n/a (" + firstLine(err) + ")"
		say("  redis: %v", err)
		return servers
	}
	secret := filepath.Join(dir, "redis.secret")
	var b [32]byte
	_, _ = rand.Read(b[:])
	if err := realserver.WriteFile(secret, []byte(hex.EncodeToString(b[:]))); err != nil {
		r.Stop()
		sides[1].Status = "error: " + firstLine(err)
		return servers
	}
	withRedis := conf + fmt.Sprintf("redis {\n  address = %s\n  secret_file = %s\n}\n", r.Addr, secret)
	s, err := startAuthd(ctx, o.Authd, filepath.Join(dir, "authd-redis"), withRedis)
	if err != nil {
		r.Stop()
		sides[1].Status, _ = authdFailure(err)
		say("  authd with redis: %v", err)
		return servers
	}
	stopAuthd := s.stop
	s.name, s.stop = "authd+redis", func() { stopAuthd(); r.Stop() }
	servers[1] = s
	return servers
}
