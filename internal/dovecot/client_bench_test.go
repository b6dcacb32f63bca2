package dovecot_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/cache"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/sasl"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// BenchmarkClientSocketPlain is one AUTH PLAIN through a real client
// socket: a unix socket, authd's ClientServer, the engine and a passdb.
// Requests are pipelined, conns × depth in flight, as login processes and
// the load generator send them. The passdbs:
//
//   - passwd-file: a {PLAIN} passwd-file held in memory. Neither Dovecot
//     nor authd caches passwd-file (it is memory already).
//   - cached-plain: the auth cache on (auth_cache_size, with the password
//     fingerprint) in front of a passdb with a cache key, every request a
//     cache hit; {PLAIN} stored.
//   - cached-sha512: the same with {SHA512-CRYPT} stored: a hit whose
//     password matches the entry's fingerprint skips the 5000-round hash.
//
// The client side is written not to allocate (reused buffers, ReadSlice),
// so allocs/op is the server's allocations per request. Run with
//
//	go test -run '^$' -bench ClientSocket -benchmem -memprofile mem.out ./internal/dovecot
//	go tool pprof -sample_index=alloc_objects -top mem.out
func BenchmarkClientSocketPlain(b *testing.B) {
	for _, kind := range []string{"passwd-file", "cached-plain", "cached-sha512"} {
		for _, c := range []struct{ conns, depth int }{{1, 1}, {1, 64}, {8, 8}} {
			b.Run(fmt.Sprintf("%s/conns=%d/depth=%d", kind, c.conns, c.depth), func(b *testing.B) {
				benchClientSocket(b, kind, c.conns, c.depth)
			})
		}
	}
}

const benchSocketUsers = 1000

// benchMapDB is an in-memory passdb with a cache key, standing in for SQL
// or LDAP: after the warm-up every request is a cache hit and the driver
// is never called (calls counts, to prove it).
type benchMapDB struct {
	stored map[string]string // user -> "{SCHEME}data"
	key    *vars.Template
	calls  atomic.Int64
}

func (d *benchMapDB) LookupPass(_ context.Context, req *backends.Request) (backends.PassAnswer, error) {
	d.calls.Add(1)
	v, ok := d.stored[req.User]
	if !ok {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	scheme, data, _ := strings.Cut(strings.TrimPrefix(v, "{"), "}")
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: backends.PassEntry{Scheme: scheme, Data: data, HasPassword: true}}, nil
}

func (d *benchMapDB) PassCacheKey() *vars.Template { return d.key }

// benchClientServer serves the client protocol on a unix socket with
// benchSocketUsers users in the kind of passdb asked for; calls, when not
// nil, counts backend lookups.
func benchClientServer(b *testing.B, kind string) (path string, calls *atomic.Int64) {
	b.Helper()
	dir := b.TempDir()
	spec := engine.DBSpec{Driver: kind, ResultSuccess: config.RuleReturnOK,
		ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	var c *cache.Cache
	switch kind {
	case "passwd-file":
		var sb strings.Builder
		for i := 1; i <= benchSocketUsers; i++ {
			fmt.Fprintf(&sb, "user%05d@example.com:{PLAIN}pw%05d:1000:1000::/var/empty::\n", i, i)
		}
		users := filepath.Join(dir, "users")
		if err := os.WriteFile(users, []byte(sb.String()), 0o644); err != nil {
			b.Fatal(err)
		}
		db, err := passwdfile.New(users, nil)
		if err != nil {
			b.Fatal(err)
		}
		spec.Passdb = db
	default:
		key, err := vars.Parse("%u")
		if err != nil {
			b.Fatal(err)
		}
		db := &benchMapDB{stored: map[string]string{}, key: key}
		for i := 1; i <= benchSocketUsers; i++ {
			pw := fmt.Sprintf("pw%05d", i)
			v := "{PLAIN}" + pw
			if kind == "cached-sha512" {
				h, err := schemes.Generate("SHA512-CRYPT", []byte(pw), "", 0)
				if err != nil {
					b.Fatal(err)
				}
				v = "{SHA512-CRYPT}" + h
			}
			db.stored[fmt.Sprintf("user%05d@example.com", i)] = v
		}
		spec.Passdb = db
		calls = &db.calls
		// auth_cache_size = 10M, auth_cache_ttl = 1 hour, fingerprint on
		// (authd's default).
		c = cache.New(cache.Options{MaxBytes: 10 << 20, TTL: time.Hour, NegativeTTL: time.Hour, Fingerprint: true})
	}
	e, err := engine.New(engine.Settings{}, []engine.DBSpec{spec}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	e.SetCache(c)
	srv := dovecot.NewClientServer(dovecot.ClientConfig{
		Engine: e,
		Mechs:  []sasl.Def{sasl.Defs["PLAIN"], sasl.Defs["LOGIN"]},
		Shared: dovecot.NewShared(uint32(os.Getpid())),
	})
	path = testenv.ServeUnix(b, filepath.Join(dir, "auth-client"), testenv.Served{Serve: srv.Serve, Shutdown: srv.Shutdown, Run: srv.Run})
	return path, calls
}

// benchConn is an allocation-free pipelining client.
type benchConn struct {
	nc    net.Conn
	br    *bufio.Reader
	bw    *bufio.Writer
	line  []byte
	resps [][]byte // base64 PLAIN initial responses, one per user
	next  int
	id    uint32
}

func dialBench(b *testing.B, path string, resps [][]byte) *benchConn {
	b.Helper()
	nc, err := net.Dial("unix", path)
	if err != nil {
		b.Fatal(err)
	}
	c := &benchConn{nc: nc, br: bufio.NewReaderSize(nc, 64<<10), bw: bufio.NewWriterSize(nc, 64<<10),
		line: make([]byte, 0, 256), resps: resps}
	fmt.Fprintf(nc, "VERSION\t1\t2\nCPID\t%d\n", benchCPID.Add(1))
	for {
		l, err := c.br.ReadSlice('\n')
		if err != nil {
			b.Fatal(err)
		}
		if string(l) == "DONE\n" {
			return c
		}
	}
}

var benchCPID atomic.Uint32

func (c *benchConn) send() {
	c.id++
	if c.id > 1<<20 {
		c.id = 1
	}
	c.line = append(c.line[:0], "AUTH\t"...)
	c.line = strconv.AppendUint(c.line, uint64(c.id), 10)
	c.line = append(c.line, "\tPLAIN\tservice=imap\tno-penalty\tresp="...)
	c.line = append(c.line, c.resps[c.next]...)
	c.line = append(c.line, '\n')
	if c.next++; c.next == len(c.resps) {
		c.next = 0
	}
	c.bw.Write(c.line)
}

// run sends n requests keeping depth in flight and returns how many were
// answered OK.
func (c *benchConn) run(n, depth int) (ok int, err error) {
	sent, inflight := 0, 0
	for ; sent < n && inflight < depth; sent++ {
		c.send()
		inflight++
	}
	for inflight > 0 {
		if c.bw.Buffered() > 0 {
			if nb := c.br.Buffered(); nb == 0 || !bytesHasLF(c.br, nb) {
				if err := c.bw.Flush(); err != nil {
					return ok, err
				}
			}
		}
		l, err := c.br.ReadSlice('\n')
		if err != nil {
			return ok, err
		}
		if bytes.HasPrefix(l, []byte("OK\t")) {
			ok++
		} else {
			return ok, fmt.Errorf("reply %q", l)
		}
		inflight--
		if sent < n {
			c.send()
			sent++
			inflight++
		}
	}
	return ok, nil
}

func bytesHasLF(br *bufio.Reader, n int) bool {
	p, _ := br.Peek(n)
	return bytes.IndexByte(p, '\n') >= 0
}

func benchClientSocket(b *testing.B, kind string, conns, depth int) {
	path, calls := benchClientServer(b, kind)
	resps := make([][]byte, benchSocketUsers)
	for i := range resps {
		raw := fmt.Sprintf("\x00user%05d@example.com\x00pw%05d", i+1, i+1)
		resps[i] = []byte(base64.StdEncoding.EncodeToString([]byte(raw)))
	}
	cs := make([]*benchConn, conns)
	for i := range cs {
		cs[i] = dialBench(b, path, resps)
		defer cs[i].nc.Close()
	}
	// Warm the server's goroutines and buffers, and the cache: every
	// connection starts at the first user, so the first one's pass covers
	// all of them.
	for _, c := range cs {
		if _, err := c.run(benchSocketUsers, depth); err != nil {
			b.Fatal(err)
		}
	}
	var callsBefore int64
	if calls != nil {
		callsBefore = calls.Load()
	}
	b.ReportAllocs()
	b.ResetTimer()
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i, c := range cs {
		n := b.N / conns
		if i < b.N%conns {
			n++
		}
		wg.Go(func() {
			got, err := c.run(n, depth)
			if err == nil && got != n {
				err = fmt.Errorf("%d OK of %d", got, n)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	b.StopTimer()
	for _, err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "auth/s")
	if calls != nil {
		if n := calls.Load() - callsBefore; n != 0 {
			b.Fatalf("%d backend lookups in the timed part: not every request was a cache hit", n)
		}
	}
}
