package config

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestRedisSection(t *testing.T) {
	if c := mustLoad(t, minimal); c.Redis.Enabled() {
		t.Fatalf("redis on without a redis { } section: %+v", c.Redis)
	}
	c := mustLoad(t, minimal+`redis {
  address = 10.0.0.5:6379, 10.0.0.6:6379 [::1]:6380
  sentinel_master = authd
  username = authd
  password_file = /etc/authd/redis.pass
  tls = yes
  tls_ca_file = /etc/authd/ca.pem
  key_prefix = mail1:
  timeout = 20 msecs
  secret_file = /etc/authd/redis.secret
  degraded_cache_ttl = 10 secs
}
`)
	want := Redis{
		Addresses: []string{"10.0.0.5:6379", "10.0.0.6:6379", "[::1]:6380"}, SentinelMaster: "authd",
		Username: "authd", PasswordFile: "/etc/authd/redis.pass", TLS: true, TLSCAFile: "/etc/authd/ca.pem",
		KeyPrefix: "mail1:", Timeout: 20 * time.Millisecond, SecretFile: "/etc/authd/redis.secret",
		DegradedCacheTTL: 10 * time.Second, Pos: c.Redis.Pos,
	}
	if !reflect.DeepEqual(c.Redis, want) {
		t.Fatalf("got  %+v\nwant %+v", c.Redis, want)
	}
	d := mustLoad(t, minimal+"redis {\n  address = 127.0.0.1:6379\n}\n").Redis
	if d.KeyPrefix != DefaultRedisKeyPrefix || d.Timeout != DefaultRedisTimeout || d.DegradedCacheTTL != DefaultRedisDegradedCacheTTL {
		t.Fatalf("defaults: %+v", d)
	}
}

func TestRedisSectionErrors(t *testing.T) {
	for _, tc := range []struct{ conf, want string }{
		{"redis {\n  address = nohost\n}\n", `"nohost": want host:port`},
		{"redis {\n  address = h:99999\n}\n", "want host:port"},
		{"redis {\n  sentinel_master = x\n}\n", "address is missing"},
		{"redis {\n  address = h:1\n  tls_ca_file = /ca\n}\n", "need tls = yes"},
		{"redis {\n  address = h:1\n  tls = yes\n  tls_cert_file = /c\n}\n", "go together"},
		{"redis {\n  address = h:1\n  key_prefix = a{b}\n}\n", "braces"},
		{"redis {\n  address = h:1\n  timeout = 1 min\n}\n", "between 1ms and 10s"},
		{"redis {\n  address = h:1\n  password_file = rel\n}\n", "absolute path"},
		{"redis {\n  adress = h:1\n}\n", `did you mean "address"`},
		{"redis foo {\n  address = h:1\n}\n", "takes no name"},
		{"protocol imap {\n  redis {\n  }\n}\n", "not allowed inside"},
	} {
		_, err := LoadBytes("t.conf", []byte(minimal+tc.conf))
		checkErrs(t, err, []string{tc.want})
	}
}

// TestRedisSection24AndDump: redis { } is read in a Dovecot 2.4 file as in
// a 2.3 one, and authd check's dump writes it (file names shown, not
// hidden as passwords), in either language, so that the dump loads back
// with the same section; the minimal dump leaves the defaults out.
func TestRedisSection24AndDump(t *testing.T) {
	const section = `redis {
  address = 10.0.0.5:6379 10.0.0.6:6379
  sentinel_master = authd
  password_file = /etc/authd/redis.pass
  tls = yes
  tls_ca_file = /etc/authd/ca.pem
  secret_file = /etc/authd/redis.secret
  timeout = 20 msecs
}
`
	c23 := mustLoad(t, minimal+section)
	c24 := load24(t, "passdb static {\n  password = x\n}\n"+section)
	if !reflect.DeepEqual(withoutPos(c24.Redis), withoutPos(c23.Redis)) {
		t.Fatalf("2.4 file: %+v\n2.3 file: %+v", c24.Redis, c23.Redis)
	}
	for name, c := range map[string]*Config{"2.3": c23, "2.4": c24} {
		var out bytes.Buffer
		c.Dump(&out)
		if !strings.Contains(out.String(), "password_file = /etc/authd/redis.pass") {
			t.Fatalf("%s dump: no password_file:\n%s", name, out.String())
		}
		back, err := LoadBytes("dump.conf", out.Bytes())
		if err != nil {
			t.Fatalf("%s dump does not load: %v\n%s", name, err, out.String())
		}
		if !reflect.DeepEqual(withoutPos(back.Redis), withoutPos(c.Redis)) {
			t.Fatalf("%s dump changes redis { }:\n%+v\n%+v", name, back.Redis, c.Redis)
		}
	}
	var min bytes.Buffer
	mustLoad(t, minimal+"redis {\n  address = 127.0.0.1:6379\n}\n").DumpWith(&min, DumpOptions{Minimal: true})
	if !strings.Contains(min.String(), "redis {\n  address = 127.0.0.1:6379\n}\n") {
		t.Fatalf("minimal dump:\n%s", min.String())
	}
}

func withoutPos(r Redis) Redis {
	r.Pos = Pos{}
	return r
}
