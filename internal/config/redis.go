package config

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
)

// Redis is authd's own `redis { }` section: the state several authd
// processes share through Redis or Valkey (docs/scale-out.md). It is off
// while Addresses is empty.
type Redis struct {
	// Addresses (address): one host:port for a standalone server, several
	// for a Redis Cluster, or the sentinels' with SentinelMaster.
	Addresses []string
	// SentinelMaster (sentinel_master) is the name the sentinels monitor.
	SentinelMaster string
	// Username (username) is the ACL user; PasswordFile (password_file)
	// holds its password (or requirepass's), SentinelPasswordFile
	// (sentinel_password_file) the sentinels'.
	Username             string
	PasswordFile         string
	SentinelPasswordFile string
	// TLS (tls) talks TLS, checked against TLSCAFile (tls_ca_file, else
	// the system's roots); TLSCertFile and TLSKeyFile (tls_cert_file,
	// tls_key_file) are a client certificate.
	TLS                                bool
	TLSCAFile, TLSCertFile, TLSKeyFile string
	// KeyPrefix (key_prefix) starts every key and channel; processes that
	// share one must have the same passdb and userdb configuration.
	KeyPrefix string
	// Timeout (timeout) bounds one call on the authentication path.
	Timeout time.Duration
	// SecretFile (secret_file) holds a secret shared by every process:
	// cache records are encrypted with it, and failed passwords are
	// hashed under it so that a repeat is recognised on every process.
	SecretFile string
	// DegradedCacheTTL (degraded_cache_ttl) is the longest a cache entry
	// is used while Redis is unreachable (flushes made elsewhere cannot
	// arrive then).
	DegradedCacheTTL time.Duration
	Pos              Pos
}

// The redis { } defaults (docs/scale-out.md lists them).
const (
	DefaultRedisKeyPrefix        = "authd:"
	DefaultRedisTimeout          = 50 * time.Millisecond
	DefaultRedisDegradedCacheTTL = time.Minute
)

// Enabled reports whether authd shares its state through Redis.
func (r Redis) Enabled() bool { return len(r.Addresses) > 0 }

var redisKeys = []string{"address", "degraded_cache_ttl", "key_prefix", "password_file", "secret_file", "sentinel_master",
	"sentinel_password_file", "timeout", "tls", "tls_ca_file", "tls_cert_file", "tls_key_file", "username"}

// redis parses the redis { } section.
func (b *builder) redis(n *conffile.Node) {
	if n.Label != "" {
		b.errs.add(n.Pos, "redis { } takes no name")
	}
	r := &b.cfg.Redis
	if r.Pos == (Pos{}) {
		*r = Redis{KeyPrefix: DefaultRedisKeyPrefix, Timeout: DefaultRedisTimeout, DegradedCacheTTL: DefaultRedisDegradedCacheTTL, Pos: n.Pos}
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in redis { }", c.Key)
		case !contains(redisKeys, c.Key):
			b.unknown(c.Pos, c.Key, "redis { }", redisKeys)
		default:
			if v, ok := b.value(c, true); ok {
				if err := setRedis(r, c.Key, v); err != nil {
					b.errs.add(c.Pos, "%s: %v", c.Key, err)
				}
			}
		}
	}
	if err := r.check(); err != nil {
		b.errs.add(n.Pos, "redis: %v", err)
	}
}

// setRedis sets one redis { } setting.
func setRedis(r *Redis, key, v string) error {
	strs := map[string]*string{"sentinel_master": &r.SentinelMaster, "username": &r.Username, "password_file": &r.PasswordFile,
		"sentinel_password_file": &r.SentinelPasswordFile, "tls_ca_file": &r.TLSCAFile, "tls_cert_file": &r.TLSCertFile,
		"tls_key_file": &r.TLSKeyFile, "secret_file": &r.SecretFile}
	switch key {
	case "address":
		addrs, err := parseRedisAddresses(v)
		if err != nil {
			return err
		}
		r.Addresses = addrs
	case "tls":
		x, err := conffile.ParseBool(v)
		if err != nil {
			return err
		}
		r.TLS = x
	case "key_prefix":
		if len(v) > 64 || strings.ContainsAny(v, "{} \t\r\n") {
			return errors.New("at most 64 characters, without blanks or braces (a brace would change Redis Cluster's hash tags)")
		}
		r.KeyPrefix = v
	case "timeout", "degraded_cache_ttl":
		d, err := conffile.ParseDuration(v, true)
		if err != nil {
			return err
		}
		if key == "timeout" && (d < time.Millisecond || d > 10*time.Second) {
			return errors.New("must be between 1ms and 10s")
		}
		if key == "degraded_cache_ttl" && d <= 0 {
			return errNotPositiveDuration
		}
		if key == "timeout" {
			r.Timeout = d
		} else {
			r.DegradedCacheTTL = d
		}
	default:
		if strings.HasSuffix(key, "_file") && v != "" && !strings.HasPrefix(v, "/") {
			return fmt.Errorf("%q: needs an absolute path", v)
		}
		*strs[key] = v
	}
	return nil
}

// parseRedisAddresses splits a list of host:port separated by blanks or
// commas.
func parseRedisAddresses(v string) ([]string, error) {
	var out []string
	for _, a := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		host, port, err := net.SplitHostPort(a)
		if err != nil {
			return nil, fmt.Errorf("%q: want host:port", a)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 || host == "" {
			return nil, fmt.Errorf("%q: want host:port", a)
		}
		out = append(out, a)
	}
	return out, nil
}

// check applies the rules that need the whole section.
func (r *Redis) check() error {
	switch {
	case !r.Enabled() && (r.SentinelMaster != "" || r.PasswordFile != "" || r.TLS):
		return errors.New("address is missing")
	case !r.TLS && (r.TLSCAFile != "" || r.TLSCertFile != "" || r.TLSKeyFile != ""):
		return errors.New("tls_ca_file, tls_cert_file and tls_key_file need tls = yes")
	case (r.TLSCertFile == "") != (r.TLSKeyFile == ""):
		return errors.New("tls_cert_file and tls_key_file go together")
	}
	return nil
}
