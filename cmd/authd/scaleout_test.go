package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authdv1 "github.com/authd-project/authd/api/proto/authd/v1"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/schemes"
)

// Scale-out (docs/scale-out.md): three authd processes on one MariaDB
// share their brute-force budgets, cache flushes and a second-level cache
// through a private Redis, and keep answering when Redis is down, hung,
// failing over or resharding.

const scaleConf = `
base_dir = $DIR/run
auth_mechanisms = plain
auth_failure_delay = 0
auth_verbose = yes
auth_cache_size = 10M
auth_cache_ttl = 30 mins
auth_cache_negative_ttl = 30 mins
passdb {
  driver = sql
  args = $DIR/dovecot-sql.conf.ext
}
userdb {
  driver = static
  args = uid=nobody gid=nogroup home=/var/mail/%%n
}
penalty {
  # Escalating failure delays are the limiter's own tests' business.
  client_max_delay = 0
}
redis {
  address = %s
  %s
  key_prefix = %s
  # Generous for a loaded test machine: a spurious timeout would make a
  # process work alone in the middle of a check.
  timeout = 300 msecs
}
service auth {
  unix_listener auth-client {
    mode = 0666
  }
  unix_listener auth-master {
    mode = 0600
  }
}
metrics {
  listen = unix:$DIR/metrics.sock
}
`

// scaleHost is one authd of the set.
type scaleHost struct {
	name string
	p    *proc
}

func (h scaleHost) client() string { return h.p.path("run/auth-client") }

// logged waits (a little: the log reaches the test through a pipe) for
// text in the host's log.
func (h scaleHost) logged(text string) bool {
	for range 100 {
		if strings.Contains(h.p.stderr.String(), text) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
func (h scaleHost) master() string { return h.p.path("run/auth-master") }

// flushGRPC flushes user's cache entries through the host's gRPC
// FlushCache.
func (h scaleHost) flushGRPC(t *testing.T, user string) {
	t.Helper()
	conn, err := grpc.NewClient("unix:"+h.p.path("run/grpc.sock"), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := authdv1.NewAuthServiceClient(conn).FlushCache(t.Context(), &authdv1.FlushCacheRequest{Users: []string{user}}); err != nil {
		t.Fatalf("gRPC FlushCache on %s: %v", h.name, err)
	}
}

// get asks the host's metrics listener for path.
func (h scaleHost) get(t *testing.T, path string) (int, string) {
	t.Helper()
	tr := &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", h.p.path("metrics.sock"))
	}}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, "http://authd"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// scaleRedisPass is the password of the Redis of scaleSharedBudget, in
// every host's redis.pass (extra: password_file = $DIR/redis.pass).
const scaleRedisPass = "redis-Secret-4711"

// startScaleHosts starts n authd processes on db sharing the Redis at
// addrs (extra: more redis { } settings).
func startScaleHosts(t *testing.T, n int, db *testenv.MariaDB, addrs []string, extra, prefix string) []scaleHost {
	t.Helper()
	var hosts []scaleHost
	for i := range n {
		conf := fmt.Sprintf(scaleConf, strings.Join(addrs, " "), extra, prefix) +
			fmt.Sprintf("grpc {\n  listen = unix:$DIR/run/grpc.sock\n  admin_uids = %d\n}\n", os.Getuid())
		p := startAuthd(t, conf, "run/auth-client", map[string]string{
			"dovecot-sql.conf.ext": fmt.Sprintf(sqlConfExt, fmt.Sprintf("host=127.0.0.1 port=%d", db.Port), ""),
			"redis.pass":           scaleRedisPass + "\n",
		})
		hosts = append(hosts, scaleHost{name: string(rune('A' + i)), p: p})
	}
	return hosts
}

// scaleAuth runs one PLAIN login and names its outcome: OK, FAIL,
// TEMPFAIL or an error.
func scaleAuth(ctx context.Context, h scaleHost, user, pass, rip string) string {
	c, err := dovecot.DialAuth(ctx, h.client())
	if err != nil {
		return "error: " + err.Error()
	}
	defer c.Close()
	params := []string{"service=imap"}
	if rip != "" {
		params = append(params, "rip="+rip)
	}
	r, err := c.Plain(ctx, params, "", user, pass)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case r.Cmd == "OK":
		return "OK"
	}
	if code, _ := r.Get("code"); code == "temp_fail" {
		return "TEMPFAIL"
	}
	return "FAIL"
}

func mustAuth(t *testing.T, h scaleHost, user, pass, rip, want string) {
	t.Helper()
	if got := scaleAuth(t.Context(), h, user, pass, rip); got != want {
		t.Fatalf("host %s: %s/%s from %q: %s, want %s", h.name, user, pass, rip, got, want)
	}
}

// scaleDB is the users table every subtest shares.
func scaleDB(t *testing.T) *testenv.MariaDB {
	db := testenv.StartMariaDB(t, testenv.MariaDBOptions{})
	var rows []string
	for _, u := range []string{"alice", "bob", "carol", "dave", "erin"} {
		rows = append(rows, fmt.Sprintf("('%s@example.com', '{SHA512-CRYPT}%s')", u, sqlHash(t, u+"pw")))
	}
	for i := range 40 {
		rows = append(rows, fmt.Sprintf("('load%02d@example.com', '{SSHA256}%s')", i, genHash(t, "SSHA256", fmt.Sprintf("load%02dpw", i))))
	}
	db.Exec(t, "CREATE TABLE authd.users (username VARCHAR(255) PRIMARY KEY, password VARCHAR(255));\n"+
		"INSERT INTO authd.users VALUES "+strings.Join(rows, ",")+";")
	return db
}

func genHash(t *testing.T, scheme, pw string) string {
	t.Helper()
	h, err := schemes.Generate(scheme, []byte(pw), "", 0)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestScaleOut(t *testing.T) {
	testenv.Require(t, "doveadm")
	db := scaleDB(t)
	t.Run("SharedBudget", func(t *testing.T) { scaleSharedBudget(t, db) })
	t.Run("FlushAndOutage", func(t *testing.T) { scaleFlushAndDBOutage(t, db) })
	t.Run("RedisDown", func(t *testing.T) { scaleRedisDown(t, db, false) })
	t.Run("RedisHung", func(t *testing.T) { scaleRedisDown(t, db, true) })
	t.Run("SentinelFailover", func(t *testing.T) { scaleSentinelFailover(t, db) })
	t.Run("ClusterReshard", func(t *testing.T) { scaleClusterReshard(t, db) })
}

// scaleSharedBudget: ten failures from one address on each of two hosts
// use up its budget of twenty: the third host refuses the right password
// from that address at once, and says so in its log; the other two never
// refused anything. Redis wants a password here, read from
// password_file, which no host logs, and is reached over TLS.
func scaleSharedBudget(t *testing.T, db *testenv.MariaDB) {
	// This Redis wants a password (requirepass), and the hosts reach it
	// over TLS only.
	ca := testenv.NewCA(t)
	r := testenv.StartRedis(t, testenv.RedisOptions{Password: scaleRedisPass, TLS: ca})
	hosts := startScaleHosts(t, 3, db, []string{r.TLSAddr},
		"password_file = $DIR/redis.pass\n  tls = yes\n  tls_ca_file = "+ca.CertFile, "budget:")
	const rip = "198.51.100.23"
	mustAuth(t, hosts[2], "carol@example.com", "carolpw", "192.0.2.1", "OK") // works from elsewhere
	for _, h := range hosts[:2] {
		for i := range 10 {
			mustAuth(t, h, fmt.Sprintf("nosuch%d@example.com", i), "guess", rip, "FAIL")
		}
	}
	mustAuth(t, hosts[2], "carol@example.com", "carolpw", rip, "FAIL")
	if !hosts[2].logged("refused by the brute-force defence (ip over its budget)") {
		t.Fatalf("host C's refusal is not the limiter's:\n%s", hosts[2].p.stderr.String())
	}
	for _, h := range hosts[:2] {
		if strings.Contains(h.p.stderr.String(), "refused by the brute-force defence") {
			t.Fatalf("host %s refused one of the first twenty failures", h.name)
		}
	}
	for _, h := range hosts {
		if _, body := h.get(t, "/metrics"); !strings.Contains(body, "\nauthd_redis_up 1\n") {
			t.Fatalf("host %s does not work with the password-protected TLS Redis", h.name)
		}
		if strings.Contains(h.p.stderr.String(), scaleRedisPass) {
			t.Fatalf("host %s logged the Redis password", h.name)
		}
	}
}

// scaleFlushAndDBOutage: after a password change and a flush on A, B and
// C refuse the old password at their very next login (and after a SIGHUP
// of A, and a gRPC FlushCache on C, as after a flush); with the database
// killed, C logs in a user only A has seen, and still refuses a wrong
// password.
func scaleFlushAndDBOutage(t *testing.T, db *testenv.MariaDB) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	hosts := startScaleHosts(t, 3, db, []string{r.Addr}, "", "flush:")
	for _, h := range hosts {
		mustAuth(t, h, "alice@example.com", "alicepw", "", "OK")
	}
	db.Exec(t, "UPDATE authd.users SET password='{PLAIN}alicenew' WHERE username='alice@example.com'")
	out, code, err := testenv.NewDoveadm(t).Run(t.Context(), "auth", "cache", "flush", "-a", hosts[0].master(), "alice@example.com")
	if err != nil || code != 0 {
		t.Fatalf("doveadm auth cache flush on A: rc %d %v\n%s", code, err, out)
	}
	for _, h := range hosts[1:] {
		mustAuth(t, h, "alice@example.com", "alicepw", "", "FAIL")
		mustAuth(t, h, "alice@example.com", "alicenew", "", "OK")
	}
	db.Exec(t, "UPDATE authd.users SET password='{SHA512-CRYPT}"+sqlHash(t, "alicepw")+"' WHERE username='alice@example.com'")

	// SIGHUP on A flushes every host's cache too.
	mustAuth(t, hosts[1], "bob@example.com", "bobpw", "", "OK")
	db.Exec(t, "UPDATE authd.users SET password='{PLAIN}bobnew' WHERE username='bob@example.com'")
	if err := hosts[0].p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if !hosts[0].logged("configuration reloaded") {
		t.Fatal("host A did not reload")
	}
	mustAuth(t, hosts[1], "bob@example.com", "bobpw", "", "FAIL")
	mustAuth(t, hosts[1], "bob@example.com", "bobnew", "", "OK")
	db.Exec(t, "UPDATE authd.users SET password='{SHA512-CRYPT}"+sqlHash(t, "bobpw")+"' WHERE username='bob@example.com'")

	// gRPC FlushCache on C reaches A and B.
	for _, h := range hosts[:2] {
		mustAuth(t, h, "carol@example.com", "carolpw", "", "OK")
	}
	db.Exec(t, "UPDATE authd.users SET password='{PLAIN}carolnew' WHERE username='carol@example.com'")
	hosts[2].flushGRPC(t, "carol@example.com")
	for _, h := range hosts[:2] {
		mustAuth(t, h, "carol@example.com", "carolpw", "", "FAIL")
		mustAuth(t, h, "carol@example.com", "carolnew", "", "OK")
	}
	db.Exec(t, "UPDATE authd.users SET password='{SHA512-CRYPT}"+sqlHash(t, "carolpw")+"' WHERE username='carol@example.com'")

	mustAuth(t, hosts[0], "dave@example.com", "davepw", "", "OK") // only A has seen dave
	db.Kill()
	defer db.Restart(t)
	mustAuth(t, hosts[2], "dave@example.com", "davepw", "", "OK")
	mustAuth(t, hosts[2], "dave@example.com", "wrong", "", "FAIL")
	mustAuth(t, hosts[2], "erin@example.com", "erinpw", "", "TEMPFAIL") // nobody has seen erin
}

// loginTimes measures logins of a cached user on every host.
func loginTimes(t *testing.T, hosts []scaleHost, n int) []time.Duration {
	var out []time.Duration
	for i := range n {
		h := hosts[i%len(hosts)]
		start := time.Now()
		mustAuth(t, h, "bob@example.com", "bobpw", "", "OK")
		out = append(out, time.Since(start))
	}
	return out
}

func medianDur(d []time.Duration) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[len(s)/2]
}

// scaleRedisDown: with Redis killed (or hung with SIGSTOP), every login on
// every host is answered within a second of its usual time, every host
// stays ready, and the limiter still refuses on its own; once Redis is
// back, sharing resumes within seconds: the failures counted alone are
// replayed, and another host refuses the address too. With Redis killed a
// fourth host starts meanwhile (the connection is made lazily): it
// serves at once, and shares once Redis is back.
func scaleRedisDown(t *testing.T, db *testenv.MariaDB, hung bool) {
	r := testenv.StartRedis(t, testenv.RedisOptions{})
	hosts := startScaleHosts(t, 3, db, []string{r.Addr}, "", "down:")
	usual := medianDur(loginTimes(t, hosts, 9))
	if hung {
		r.Pause()
	} else {
		r.Kill()
		late := startScaleHosts(t, 1, db, []string{r.Addr}, "", "down:")[0]
		late.name = "D"
		hosts = append(hosts, late)
	}
	during := loginTimes(t, hosts, 12)
	slowest := slices.Max(during)
	t.Logf("usual login %v; with Redis %s: slowest %v, median %v", usual, map[bool]string{true: "hung", false: "killed"}[hung], slowest, medianDur(during))
	if slowest > usual+time.Second {
		t.Fatalf("a login took %v with Redis down (usual %v)", slowest, usual)
	}
	scaleWorkAlone(t, hosts)
	const rip = "203.0.113.99"
	for i := range 20 {
		mustAuth(t, hosts[0], fmt.Sprintf("x%d@example.com", i), "guess", rip, "FAIL")
	}
	mustAuth(t, hosts[0], "bob@example.com", "bobpw", rip, "FAIL") // refused alone
	if !hosts[0].logged("refused by the brute-force defence (ip over its budget)") {
		t.Fatal("host A did not refuse the address on its own")
	}
	mustAuth(t, hosts[1], "bob@example.com", "bobpw", rip, "OK") // B cannot know yet
	if hung {
		r.Resume()
	} else {
		r.Restart(t)
	}
	back := time.Now()
	scaleRefusesAgain(t, hosts[1], rip, 0, back)
	if len(hosts) == 4 {
		scaleRefusesAgain(t, hosts[3], rip, 20, back)
	}
}

// scaleWorkAlone checks that every host stays ready while Redis is down
// (Redis is an optimisation), and says it works alone.
func scaleWorkAlone(t *testing.T, hosts []scaleHost) {
	t.Helper()
	for _, h := range hosts {
		if code, body := h.get(t, "/readyz"); code != http.StatusOK {
			t.Fatalf("host %s not ready with Redis down: %d %s", h.name, code, body)
		}
		if _, body := h.get(t, "/metrics"); !strings.Contains(body, "\nauthd_redis_up 0\n") {
			t.Fatalf("host %s: authd_redis_up is not 0 with Redis down", h.name)
		}
	}
}

// scaleRefusesAgain waits (a few seconds at most) until h refuses the
// right password of a load user from rip, which only the failures
// another host counted alone, replayed into Redis, can make it do. A new
// account each time, from the 20 starting at first: a success from the
// address makes that account's pair known-good, exempt from the
// address's budget.
func scaleRefusesAgain(t *testing.T, h scaleHost, rip string, first int, back time.Time) {
	t.Helper()
	for i := first; ; i++ {
		if i == first+20 {
			t.Fatalf("%v after Redis came back, host %s still lets the address in", time.Since(back), h.name)
		}
		user := fmt.Sprintf("load%02d@example.com", i)
		if scaleAuth(t.Context(), h, user, fmt.Sprintf("load%02dpw", i), rip) == "FAIL" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("host %s: sharing resumed %v after Redis came back", h.name, time.Since(back).Round(time.Millisecond))
}

// loadRun is logins on every host from several goroutines, right and
// wrong passwords of the load users, until finish.
type loadRun struct {
	stop   chan struct{}
	wg     sync.WaitGroup
	mu     sync.Mutex
	counts map[string]int
	wrong  []string
}

func (l *loadRun) note(kind, got string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.counts[kind+" "+got]++
	bad := (kind == "right" && got == "FAIL") || (kind == "wrong" && got == "OK") || strings.HasPrefix(got, "error")
	if bad && len(l.wrong) < 10 {
		l.wrong = append(l.wrong, kind+" password: "+got)
	}
}

func startLoad(hosts []scaleHost) *loadRun {
	l := &loadRun{stop: make(chan struct{}), counts: map[string]int{}}
	var next atomic.Int64
	for g := range 4 {
		l.wg.Go(func() {
			for {
				select {
				case <-l.stop:
					return
				default:
				}
				n := next.Add(1)
				h := hosts[int(n)%len(hosts)]
				user := fmt.Sprintf("load%02d@example.com", n%40)
				pass, kind := fmt.Sprintf("load%02dpw", n%40), "right"
				if n%5 == 0 {
					pass, kind = "nope", "wrong"
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				// Each goroutine its own networks, far from any budget.
				l.note(kind, scaleAuth(ctx, h, user, pass, fmt.Sprintf("10.%d.%d.1", g, n%200)))
				cancel()
			}
		})
	}
	return l
}

// finish stops the load and fails the test on any wrong answer.
func (l *loadRun) finish(t *testing.T) {
	t.Helper()
	close(l.stop)
	l.wg.Wait()
	t.Logf("answers under load: %v", l.counts)
	if len(l.wrong) > 0 {
		t.Fatalf("wrong answers under load: %v", l.wrong)
	}
	if l.counts["right OK"] == 0 || l.counts["wrong FAIL"] == 0 {
		t.Fatalf("the load made no logins: %v", l.counts)
	}
}

// sharingWorks checks that a flush on A reaches B: B's cached entry for
// the user must not let the old password in after the change.
func sharingWorks(t *testing.T, db *testenv.MariaDB, hosts []scaleHost, user string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		mustAuth(t, hosts[1], user+"@example.com", user+"pw", "", "OK")
		db.Exec(t, fmt.Sprintf("UPDATE authd.users SET password='{PLAIN}changed' WHERE username='%s@example.com'", user))
		_, _, _ = testenv.NewDoveadm(t).Run(t.Context(), "auth", "cache", "flush", "-a", hosts[0].master(), user+"@example.com")
		got := scaleAuth(t.Context(), hosts[1], user+"@example.com", user+"pw", "")
		db.Exec(t, fmt.Sprintf("UPDATE authd.users SET password='{SHA512-CRYPT}%s' WHERE username='%s@example.com'", sqlHash(t, user+"pw"), user))
		// The restore must reach B too before the next round.
		_, _, _ = testenv.NewDoveadm(t).Run(t.Context(), "auth", "cache", "flush", "-a", hosts[0].master(), user+"@example.com")
		if got == "FAIL" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("a flush on A never reached B (B answered %s to the old password)", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// scaleSentinelFailover: the master is SIGKILLed under load; no login is
// answered wrongly, and once the sentinels have promoted the replica the
// processes share again.
func scaleSentinelFailover(t *testing.T, db *testenv.MariaDB) {
	s := testenv.StartRedisSentinel(t, testenv.RedisOptions{})
	hosts := startScaleHosts(t, 3, db, s.Addrs, "sentinel_master = "+s.MasterName, "sentinel:")
	sharingWorks(t, db, hosts, "carol")
	load := startLoad(hosts)
	time.Sleep(300 * time.Millisecond)
	old := s.Master.Addr
	s.Master.Kill()
	deadline := time.Now().Add(20 * time.Second)
	for {
		addr, err := s.MasterAddr(t.Context())
		if err == nil && addr != old {
			break
		}
		if time.Now().After(deadline) {
			load.finish(t)
			t.Fatal("the sentinels never promoted the replica")
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second)
	load.finish(t)
	sharingWorks(t, db, hosts, "carol")
}

// scaleClusterReshard: slots (with their keys) move between Cluster
// nodes under load; no login is answered wrongly, and sharing works
// afterwards.
func scaleClusterReshard(t *testing.T, db *testenv.MariaDB) {
	c := testenv.StartRedisCluster(t, testenv.RedisOptions{})
	hosts := startScaleHosts(t, 3, db, c.Addrs, "", "cluster:")
	sharingWorks(t, db, hosts, "erin")
	load := startLoad(hosts)
	time.Sleep(300 * time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	err := c.Reshard(ctx, 0, 1, 2000)
	time.Sleep(300 * time.Millisecond)
	load.finish(t)
	if err != nil {
		t.Fatalf("reshard: %v", err)
	}
	sharingWorks(t, db, hosts, "erin")
}
