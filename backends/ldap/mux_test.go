package ldap

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	ber "github.com/go-asn1-ber/asn1-ber"
	goldap "github.com/go-ldap/ldap/v3"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/schemes"
)

// TestAppendSearchMatchesGoLDAP: the lookup path's SearchRequest is byte
// for byte what go-ldap sends for the same search.
func TestAppendSearchMatchesGoLDAP(t *testing.T) {
	long := strings.Repeat("x", 300) // lengths in the long form
	for _, tc := range []struct {
		base   string
		scope  int
		deref  int
		filter string
		attrs  []string
	}{
		{"ou=people,dc=example,dc=com", goldap.ScopeSingleLevel, goldap.NeverDerefAliases,
			"(&(objectClass=posixAccount)(mail=user00001@example.com))", []string{"mail", "userPassword"}},
		{"dc=example,dc=com", goldap.ScopeWholeSubtree, goldap.DerefAlways, "(uid=a\\2ab*c)", []string{"1.1"}},
		{"cn=" + long, goldap.ScopeBaseObject, goldap.DerefInSearching, "(|(cn=" + long + ")(!(sn=*)))", []string{long, "x"}},
	} {
		client, server := net.Pipe()
		lc := goldap.NewConn(client, false)
		lc.Start()
		go func() {
			_, _ = lc.Search(goldap.NewSearchRequest(tc.base, tc.scope, tc.deref, searchSizeLimit, 0, false, tc.filter, tc.attrs, nil))
		}()
		got, err := readMessage(bufio.NewReader(server), nil)
		if err != nil {
			t.Fatal(err)
		}
		lc.Close()
		server.Close()
		p := ber.DecodePacket(got)
		id := p.Children[0].Value.(int64)
		var w berWriter
		if err := appendSearch(&w, int32(id), tc.base, tc.scope, tc.deref, searchSizeLimit, tc.filter, tc.attrs); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(w.b, got) {
			t.Errorf("%s:\n ours  % x\n go-ldap % x", tc.filter, w.b, got)
		}
	}
}

// fakeServer is a scripted LDAP server for the error paths of the lookup
// connections. serve runs once per accepted connection with the
// connection's requests as they arrive.
type fakeServer struct {
	addr  string
	mu    sync.Mutex
	conns int
}

type fakeRequest struct {
	id     int64
	op     ber.Tag
	filter string // searches: the filter, decompiled
	target int64  // abandon: the id abandoned
}

func startFake(t *testing.T, serve func(conn int, reqs <-chan fakeRequest, w *fakeWriter)) *fakeServer {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeServer{addr: l.Addr().String()}
	var wg sync.WaitGroup
	var open []net.Conn
	var omu sync.Mutex
	t.Cleanup(func() {
		l.Close()
		omu.Lock()
		for _, c := range open {
			c.Close()
		}
		omu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			omu.Lock()
			open = append(open, c)
			omu.Unlock()
			f.mu.Lock()
			f.conns++
			n := f.conns
			f.mu.Unlock()
			reqs := make(chan fakeRequest, 64)
			wg.Add(2)
			go func() {
				defer wg.Done()
				defer close(reqs)
				br := bufio.NewReader(c)
				for {
					msg, err := readMessage(br, nil)
					if err != nil {
						return
					}
					p := ber.DecodePacket(msg)
					r := fakeRequest{id: p.Children[0].Value.(int64), op: p.Children[1].Tag}
					switch r.op {
					case goldap.ApplicationSearchRequest:
						r.filter, _ = goldap.DecompileFilter(p.Children[1].Children[6])
					case goldap.ApplicationAbandonRequest:
						r.target, _ = berInt(p.Children[1].Data.Bytes())
					}
					reqs <- r
				}
			}()
			go func() {
				defer wg.Done()
				serve(n, reqs, &fakeWriter{c: c})
			}()
		}
	}()
	return f
}

// count is how many connections the server has accepted.
func (f *fakeServer) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.conns
}

type fakeWriter struct{ c net.Conn }

func (w *fakeWriter) raw(b []byte) { _, _ = w.c.Write(b) }

func (w *fakeWriter) entry(id int64, dn string, attrs ...string) {
	var b berWriter
	b.begin(tagSequence)
	b.integer(tagInteger, id)
	b.begin(opSearchEntry)
	b.octets(tagOctets, dn)
	b.begin(tagSequence)
	for i := 0; i+1 < len(attrs); i += 2 {
		b.begin(tagSequence)
		b.octets(tagOctets, attrs[i])
		b.begin(tagSet)
		b.octets(tagOctets, attrs[i+1])
		b.end()
		b.end()
	}
	b.end()
	b.end()
	b.end()
	w.raw(b.b)
}

func (w *fakeWriter) done(id int64, code int, diag string) {
	w.raw(resultMessage(id, opSearchDone, code, diag))
}

func resultMessage(id int64, op byte, code int, diag string) []byte {
	var b berWriter
	b.begin(tagSequence)
	b.integer(tagInteger, id)
	b.begin(op)
	b.integer(tagEnumerated, int64(code))
	b.octets(tagOctets, "")
	b.octets(tagOctets, diag)
	b.end()
	b.end()
	return b.b
}

// answer replies to a search for (uid=X) with one entry uid=X carrying
// mail=X.
func (w *fakeWriter) answer(r fakeRequest) {
	x := strings.TrimSuffix(strings.TrimPrefix(r.filter, "(uid="), ")")
	w.entry(r.id, "uid="+x+",dc=test", "mail", x)
	w.done(r.id, 0, "")
}

func fakePool(t *testing.T, f *fakeServer, size int, timeout time.Duration) *lookupPool {
	t.Helper()
	targets, err := parseTargets("ldap://"+f.addr, "")
	if err != nil {
		t.Fatal(err)
	}
	d := &dialer{targets: targets, timeout: timeout, failback: time.Minute,
		log: slog.New(slog.DiscardHandler), downUntil: make([]time.Time, len(targets))}
	p := newLookupPool(d, nil, size)
	t.Cleanup(p.close)
	return p
}

func lookup(ctx context.Context, p *lookupPool, uid string) searchResult {
	return p.search(ctx, "dc=test", goldap.ScopeWholeSubtree, goldap.NeverDerefAliases, "(uid="+uid+")", []string{"mail"})
}

func mailOf(res searchResult) string {
	if res.err != nil || len(res.entries) != 1 {
		return fmt.Sprintf("<%d entries, %v>", len(res.entries), res.err)
	}
	return strings.Join(res.entries[0].get("MAIL"), ",")
}

// TestMuxOutOfOrder: replies come back in any order on one connection and
// each caller gets its own.
func TestMuxOutOfOrder(t *testing.T) {
	f := startFake(t, func(_ int, reqs <-chan fakeRequest, w *fakeWriter) {
		var batch []fakeRequest
		for r := range reqs {
			batch = append(batch, r)
			if len(batch) == 5 {
				for i := len(batch) - 1; i >= 0; i-- {
					w.answer(batch[i])
				}
				batch = batch[:0]
			}
		}
	})
	p := fakePool(t, f, 1, 5*time.Second)
	var wg sync.WaitGroup
	for i := range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			uid := fmt.Sprintf("u%d", i)
			if got := mailOf(lookup(context.Background(), p, uid)); got != uid {
				t.Errorf("%s got %s", uid, got)
			}
		}()
	}
	wg.Wait()
	if f.count() != 1 {
		t.Errorf("%d connections for 5 searches on a pool of 1", f.count())
	}
}

// TestMuxServerFailures: a disconnection notice, a malformed reply and a
// closed socket fail the searches in flight with a network error (never
// "not found"), and the next search gets a new connection.
func TestMuxServerFailures(t *testing.T) {
	for name, fail := range map[string]func(w *fakeWriter, r fakeRequest){
		"notice-of-disconnection": func(w *fakeWriter, r fakeRequest) {
			w.raw(resultMessage(0, opExtendedResp, int(goldap.LDAPResultUnavailable), "shutting down"))
			w.c.Close()
		},
		"malformed": func(w *fakeWriter, r fakeRequest) {
			w.raw([]byte{0x30, 0x05, 0x02, 0x01, byte(r.id), 0x65, 0x07})
		},
		"garbage": func(w *fakeWriter, r fakeRequest) {
			w.raw([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
		},
		"closed": func(w *fakeWriter, r fakeRequest) { w.c.Close() },
		"entry-then-close": func(w *fakeWriter, r fakeRequest) {
			w.entry(r.id, "uid=x,dc=test", "mail", "x")
			w.c.Close()
		},
	} {
		t.Run(name, func(t *testing.T) {
			f := startFake(t, func(conn int, reqs <-chan fakeRequest, w *fakeWriter) {
				for r := range reqs {
					if conn == 1 {
						fail(w, r)
						return
					}
					w.answer(r)
				}
			})
			p := fakePool(t, f, 1, 5*time.Second)
			res := lookup(context.Background(), p, "a")
			var le *goldap.Error
			if !errors.As(res.err, &le) || le.ResultCode != goldap.ErrorNetwork || len(res.entries) != 0 {
				t.Fatalf("first search: %d entries, err %v; want a network error", len(res.entries), res.err)
			}
			if got := mailOf(lookup(context.Background(), p, "b")); got != "b" {
				t.Errorf("after the failure: %s", got)
			}
		})
	}
}

// TestMuxRetryOnce: a search that fails because a connection already in
// use died (a server restart) is retried once on a new connection, so the
// login does not fail; a search on a connection made for it is not.
func TestMuxRetryOnce(t *testing.T) {
	f := startFake(t, func(conn int, reqs <-chan fakeRequest, w *fakeWriter) {
		for r := range reqs {
			if conn == 1 && r.filter == "(uid=b)" || r.filter == "(uid=never)" {
				w.c.Close()
				return
			}
			w.answer(r)
		}
	})
	p := fakePool(t, f, 1, 5*time.Second)
	if got := mailOf(lookup(context.Background(), p, "a")); got != "a" {
		t.Fatal(got)
	}
	if got := mailOf(lookup(context.Background(), p, "b")); got != "b" {
		t.Errorf("b: %s", got)
	}
	if f.count() != 2 {
		t.Errorf("%d connections, want 2", f.count())
	}
	// Every connection drops this one: one retry, then the error.
	res := lookup(context.Background(), p, "never")
	var le *goldap.Error
	if !errors.As(res.err, &le) || le.ResultCode != goldap.ErrorNetwork {
		t.Errorf("never: %v", res.err)
	}
	if f.count() != 3 {
		t.Errorf("%d connections after a failed retry, want 3", f.count())
	}
}

// TestMuxCancelAbandons: a request that gives up abandons its search
// (RFC 4511 §4.11) and leaves the connection to the others; its late
// reply is dropped.
func TestMuxCancelAbandons(t *testing.T) {
	abandoned := make(chan int64, 1)
	arrived := make(chan struct{})
	f := startFake(t, func(_ int, reqs <-chan fakeRequest, w *fakeWriter) {
		var slow fakeRequest
		for r := range reqs {
			switch {
			case r.op == goldap.ApplicationAbandonRequest:
				if r.target != slow.id {
					t.Errorf("abandoned id %d, the cancelled search was %d", r.target, slow.id)
				}
				abandoned <- r.target
				w.answer(slow) // crosses the abandon: must be dropped
			case r.filter == "(uid=slow)":
				slow = r
				close(arrived)
			default:
				w.answer(r)
			}
		}
	})
	p := fakePool(t, f, 1, 5*time.Second)
	// The request gives up once the server has its search, whatever the
	// machine's speed.
	ctx, cancel := context.WithCancel(context.Background())
	go func() { <-arrived; cancel() }()
	if res := lookup(ctx, p, "slow"); !errors.Is(res.err, context.Canceled) {
		t.Fatalf("slow search: %v", res.err)
	}
	select {
	case <-abandoned:
	case <-time.After(10 * time.Second):
		t.Fatal("no AbandonRequest")
	}
	for _, uid := range []string{"a", "b"} {
		if got := mailOf(lookup(context.Background(), p, uid)); got != uid {
			t.Errorf("%s: %s", uid, got)
		}
	}
	if f.count() != 1 {
		t.Errorf("%d connections; the cancelled search should not cost one", f.count())
	}
}

// TestMuxTimeout: a server that does not answer within authd_timeout
// fails the search with a timeout (not "not found") and the connection is
// replaced.
func TestMuxTimeout(t *testing.T) {
	f := startFake(t, func(conn int, reqs <-chan fakeRequest, w *fakeWriter) {
		for r := range reqs {
			if conn > 1 {
				w.answer(r)
			}
		}
	})
	p := fakePool(t, f, 1, 200*time.Millisecond)
	res := lookup(context.Background(), p, "a")
	if res.err == nil || !isTimeout(res.err) {
		t.Fatalf("got %v, want a timeout", res.err)
	}
	if got := mailOf(lookup(context.Background(), p, "b")); got != "b" {
		t.Errorf("after the timeout: %s", got)
	}
}

// TestMuxResults: result codes other than success reach the caller as
// *goldap.Error with the entries that came before.
func TestMuxResults(t *testing.T) {
	f := startFake(t, func(_ int, reqs <-chan fakeRequest, w *fakeWriter) {
		for r := range reqs {
			switch r.filter {
			case "(uid=two)":
				w.entry(r.id, "uid=two,dc=a", "mail", "1")
				w.entry(r.id, "uid=two,dc=b", "mail", "2")
				w.entry(r.id, "uid=two,dc=c", "mail", "3") // beyond the size limit: dropped
				w.done(r.id, int(goldap.LDAPResultSizeLimitExceeded), "")
			case "(uid=nobase)":
				w.done(r.id, int(goldap.LDAPResultNoSuchObject), "no such base")
			case "(uid=none)":
				w.done(r.id, 0, "")
			}
		}
	})
	p := fakePool(t, f, 1, 5*time.Second)
	res := lookup(context.Background(), p, "two")
	var le *goldap.Error
	if !errors.As(res.err, &le) || le.ResultCode != goldap.LDAPResultSizeLimitExceeded || len(res.entries) != 2 {
		t.Errorf("two: %d entries, %v", len(res.entries), res.err)
	}
	res = lookup(context.Background(), p, "nobase")
	if !errors.As(res.err, &le) || le.ResultCode != goldap.LDAPResultNoSuchObject || !strings.Contains(res.err.Error(), "no such base") {
		t.Errorf("nobase: %v", res.err)
	}
	if res = lookup(context.Background(), p, "none"); res.err != nil || len(res.entries) != 0 {
		t.Errorf("none: %d entries, %v", len(res.entries), res.err)
	}
}

// TestMuxCloseInFlight: closing the pool ends the searches in flight and
// every reader goroutine.
func TestMuxCloseInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	got := make(chan struct{}, 8)
	f := startFake(t, func(_ int, reqs <-chan fakeRequest, _ *fakeWriter) {
		for range reqs {
			got <- struct{}{}
		}
	})
	p := fakePool(t, f, 2, time.Minute)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- lookup(context.Background(), p, "a").err }()
	}
	for range 4 {
		<-got
	}
	p.close()
	for range 4 {
		if err := <-errs; !errors.Is(err, errClosed) {
			t.Errorf("in flight at close: %v", err)
		}
	}
	if res := lookup(context.Background(), p, "a"); !errors.Is(res.err, errClosed) {
		t.Errorf("after close: %v", res.err)
	}
	// The fake server's goroutines are still up; no reader of ours may be.
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "(*muxConn).readLoop") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a connection reader outlived close (%d goroutines, %d before):\n%s", runtime.NumGoroutine(), before, stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSlapdMultiplexed: against the real slapd, many concurrent lookups
// share one connection (authd_pool_size = 1) and each gets its own
// user's entry: replies never cross.
func TestSlapdMultiplexed(t *testing.T) {
	dir := startDirectory(t, dirOptions{})
	d := testDB(t, conformanceConf(serviceHead(dir.URI)+"authd_pool_size = 1\n"))
	var wg sync.WaitGroup
	for g := range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20 {
				u := conformance.Users[(g+i)%len(conformance.Users)]
				pe, err := d.LookupPass(context.Background(), req(u.Name))
				if err != nil || pe.Outcome != backends.Found {
					t.Errorf("%s: found=%v err=%v", u.Name, pe.Outcome, err)
					return
				}
				if u.Plain == "" {
					continue
				}
				if good, err := schemes.Verify(pe.Scheme, pe.Data, []byte(u.Plain), u.Name); !good || err != nil {
					t.Errorf("%s: got another user's password (%v)", u.Name, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	d.look.mu.Lock()
	n := len(d.look.conns)
	d.look.mu.Unlock()
	if n != 1 {
		t.Errorf("%d lookup connections with authd_pool_size = 1", n)
	}
}

// TestMuxTimeoutSparesOthers: when one search gets no answer in time, its
// connection goes, and the searches that shared it are retried on a new
// one instead of failing too.
func TestMuxTimeoutSparesOthers(t *testing.T) {
	held := make(chan fakeRequest, 8)
	f := startFake(t, func(conn int, reqs <-chan fakeRequest, w *fakeWriter) {
		for r := range reqs {
			if conn == 1 {
				held <- r // never answered
				continue
			}
			w.answer(r)
		}
	})
	p := fakePool(t, f, 1, time.Second)
	slow := make(chan searchResult, 1)
	go func() { slow <- lookup(context.Background(), p, "slow") }()
	<-held
	// "a" starts well after "slow", so its own clock has time left when
	// the connection is dropped for "slow".
	time.Sleep(400 * time.Millisecond)
	if got := mailOf(lookup(context.Background(), p, "a")); got != "a" {
		t.Errorf("search sharing the hung connection: %s", got)
	}
	if res := <-slow; !isTimeout(res.err) || !errors.Is(res.err, errSearchTimeout) {
		t.Errorf("hung search: %v", res.err)
	}
	if f.count() != 2 {
		t.Errorf("%d connections, want 2", f.count())
	}
}

// TestConnectFailoverOnUnavailable: a server that answers the service bind
// with "unavailable" (what a server shutting down, or a proxy without a
// backend, says) is skipped for the next one, like an unreachable one;
// "invalid credentials" is not (the other would refuse too).
func TestConnectFailoverOnUnavailable(t *testing.T) {
	const bindResponse = berApplication | berConstructed | 1
	server := func(code int) *fakeServer {
		return startFake(t, func(_ int, reqs <-chan fakeRequest, w *fakeWriter) {
			for r := range reqs {
				if r.op == goldap.ApplicationBindRequest {
					w.raw(resultMessage(r.id, bindResponse, code, "bind answer"))
					continue
				}
				w.answer(r)
			}
		})
	}
	for _, tc := range []struct {
		code     int
		failover bool
	}{
		{int(goldap.LDAPResultUnavailable), true},
		{int(goldap.LDAPResultBusy), true},
		{int(goldap.LDAPResultInvalidCredentials), false},
	} {
		first, second := server(tc.code), server(0)
		targets, err := parseTargets("ldap://"+first.addr+" ldap://"+second.addr, "")
		if err != nil {
			t.Fatal(err)
		}
		d := &dialer{targets: targets, timeout: 5 * time.Second, failback: time.Minute,
			log: slog.New(slog.DiscardHandler), downUntil: make([]time.Time, len(targets))}
		p := newLookupPool(d, &binder{dn: "cn=svc", pass: "pw"}, 1)
		res := lookup(context.Background(), p, "a")
		p.close()
		if tc.failover {
			if got := mailOf(res); got != "a" || !d.isDown(0) || second.count() != 1 {
				t.Errorf("code %d: %s, first down %v, second used %d times", tc.code, got, d.isDown(0), second.count())
			}
		} else if le := (*goldap.Error)(nil); !errors.As(res.err, &le) || le.ResultCode != uint16(tc.code) || d.isDown(0) || second.count() != 0 {
			t.Errorf("code %d: %v, first down %v, second used %d times", tc.code, res.err, d.isDown(0), second.count())
		}
	}
}

// TestBERLengthBounds: lengths a hostile server could send never decode
// to a negative or huge int (which would slice out of range on 32-bit).
func TestBERLengthBounds(t *testing.T) {
	for _, b := range [][]byte{
		{0x84, 0xff, 0xff, 0xff, 0xf0},
		{0x84, 0x80, 0, 0, 0},
		{0x85, 1, 2, 3, 4, 5},
		{0x80},
		{0x82, 0x01},
		{},
	} {
		if n, _, err := berLength(b); err == nil {
			t.Errorf("% x: length %d accepted", b, n)
		}
	}
	if n, size, err := berLength([]byte{0x83, 0x01, 0x00, 0x00}); err != nil || n != 65536 || size != 4 {
		t.Errorf("65536: %d %d %v", n, size, err)
	}
}

// FuzzDispatch feeds arbitrary server bytes to the reply reader: it may
// reject them, never panic, and a call only ever completes once.
func FuzzDispatch(f *testing.F) {
	var w berWriter
	w.begin(tagSequence)
	w.integer(tagInteger, 1)
	w.begin(opSearchEntry)
	w.octets(tagOctets, "uid=a,dc=x")
	w.begin(tagSequence)
	w.begin(tagSequence)
	w.octets(tagOctets, "mail")
	w.begin(tagSet)
	w.octets(tagOctets, "a@x")
	w.end()
	w.end()
	w.end()
	w.end()
	w.end()
	entry := append([]byte(nil), w.b...)
	f.Add(append(entry, resultMessage(1, opSearchDone, 0, "")...))
	f.Add(resultMessage(2, opSearchDone, 32, "no such object"))
	f.Add(resultMessage(0, opExtendedResp, 52, "bye"))
	f.Add([]byte{0x30, 0x84, 0xff, 0xff, 0xff, 0xf0, 0x02})
	f.Add([]byte{0x30, 0x06, 0x02, 0x01, 0x01, 0x73, 0x01, 0x04})
	f.Fuzz(func(t *testing.T, data []byte) {
		c := &muxConn{pending: map[int32]*call{}}
		calls := make([]*call, 3)
		for i := range calls {
			calls[i] = &call{id: int32(i + 1), done: make(chan struct{}, 1)}
			c.pending[calls[i].id] = calls[i]
		}
		br := bufio.NewReader(bytes.NewReader(data))
		var msg []byte
		for {
			var err error
			if msg, err = readMessage(br, msg[:0]); err != nil {
				break
			}
			if err := c.dispatch(msg); err != nil {
				break
			}
		}
		for _, cl := range calls {
			if len(cl.entries) > searchSizeLimit {
				t.Errorf("call %d: %d entries", cl.id, len(cl.entries))
			}
			_, still := c.pending[cl.id]
			if signalled := len(cl.done) == 1; signalled == still {
				t.Errorf("call %d: pending %v, signalled %v", cl.id, still, signalled)
			}
		}
	})
}

// TestBindRefusalIsNotUnknownUser: result codes that mean "no such user"
// in a search's answer (noSuchObject, invalidDNSyntax) mean a broken
// service account when the service bind gets them: every lookup must be
// an error, never "not found" (which would be cached and answered as a
// wrong password).
func TestBindRefusalIsNotUnknownUser(t *testing.T) {
	const bindResponse = berApplication | berConstructed | 1
	for _, code := range []int{int(goldap.LDAPResultNoSuchObject), int(goldap.LDAPResultInvalidDNSyntax)} {
		f := startFake(t, func(_ int, reqs <-chan fakeRequest, w *fakeWriter) {
			for r := range reqs {
				if r.op == goldap.ApplicationBindRequest {
					w.raw(resultMessage(r.id, bindResponse, code, "refused"))
					continue
				}
				w.answer(r)
			}
		})
		d := testDB(t, conformanceConf(serviceHead("ldap://"+f.addr)))
		if ans, err := d.LookupPass(context.Background(), req("alice@example.com")); err == nil {
			t.Errorf("bind answered %d: found=%v err=%v, want an error", code, ans.Outcome, err)
		}
		if ans, err := d.LookupUser(context.Background(), req("alice@example.com")); err == nil {
			t.Errorf("bind answered %d (userdb): found=%v err=%v, want an error", code, ans.Outcome, err)
		}
	}
	// A dn that is not a DN is refused when the file is read.
	if _, err := New(writeConf(t, "uris = ldap://127.0.0.1:1\nbase = dc=x\ndn = not a dn\ndnpass = x\n"), nil); err == nil || !strings.Contains(err.Error(), ":3: dn: not a valid DN") {
		t.Errorf("dn = not a dn: %v", err)
	}
}
