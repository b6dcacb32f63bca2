package ldap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/schemes"
)

// conformanceConf serves conformance.Users from the test tree. head
// carries the connection settings.
func conformanceConf(head string) string {
	return head + `
base = ` + confBase + `
pass_filter = (&(objectClass=posixAccount)(uid=%u))
pass_attrs = userPassword=password,mailLocation=userdb_mail
user_filter = (&(objectClass=posixAccount)(uid=%u))
user_attrs = uidNumber=uid,gidNumber=gid,homeDirectory=home
iterate_filter = (objectClass=posixAccount)
iterate_attrs = uid=user
`
}

func serviceHead(uri string) string {
	return fmt.Sprintf("uris = %s\ndn = %s\ndnpass = %s\n", uri, serviceDN, servicePW)
}

// prodConf is the production configuration with hosts pointing at the
// test server and the service account added: the test ACL, like most
// real ones, lets no anonymous client read userPassword.
func prodConf(uri, extra string) string {
	hostport := strings.TrimPrefix(uri, "ldap://")
	return strings.Replace(productionConf, "hosts = localhost", "hosts = "+hostport, 1) +
		"dn = " + serviceDN + "\ndnpass = " + servicePW + "\n" + extra
}

func req(name string) *backends.Request { return conformance.Request(name) }

func TestSlapd(t *testing.T) {
	dir := startDirectory(t, dirOptions{})
	ctx := context.Background()

	t.Run("conformance", func(t *testing.T) {
		d := testDB(t, conformanceConf(serviceHead(dir.URI)))
		t.Run("passdb", func(t *testing.T) { conformance.RunPassdb(t, d) })
		t.Run("userdb", func(t *testing.T) { conformance.RunUserdb(t, d) })
		t.Run("iterator", func(t *testing.T) { conformance.RunIterator(t, d) })
		t.Run("iterator-paged", func(t *testing.T) {
			// Five users in pages of two: three pages, and an early stop
			// in the first page abandons the paged search (RFC 2696 §3).
			d.pageSize = 2
			defer func() { d.pageSize = iteratePageSize }()
			conformance.RunIterator(t, d)
			// The connection is still good after the abandon.
			if ans, err := d.LookupPass(ctx, req("alice@example.com")); ans.Outcome != backends.Found || err != nil {
				t.Errorf("lookup after abandoned listing: %v %v", ans.Outcome, err)
			}
		})
	})

	t.Run("conformance-ldapi-sasl-external", func(t *testing.T) {
		d := testDB(t, conformanceConf("uris = "+dir.LDAPIURI+"\nsasl_bind = yes\nsasl_mech = EXTERNAL\n"))
		conformance.RunPassdb(t, d)
		// Without the SASL bind the same socket is anonymous and the ACL
		// hides userPassword: the passwords above came through EXTERNAL.
		anon := testDB(t, conformanceConf("uris = "+dir.LDAPIURI+"\n"))
		pe, err := anon.LookupPass(ctx, req("alice@example.com"))
		if err != nil || pe.Outcome != backends.Found || pe.HasPassword {
			t.Errorf("anonymous over ldapi: found=%v err=%v password=%v", pe.Outcome, err, pe.HasPassword)
		}
	})

	t.Run("production", func(t *testing.T) {
		d := testDB(t, prodConf(dir.URI, ""))
		for _, uid := range []string{"ssha", "crypt", "plain", "bare", "multi"} {
			u := dir.prod[uid]
			pe, err := d.LookupPass(ctx, req(u.name()))
			if err != nil || pe.Outcome != backends.Found || !pe.HasPassword {
				t.Errorf("%s: found=%v err=%v password=%v", uid, pe.Outcome, err, pe.HasPassword)
				continue
			}
			good, err := schemes.Verify(pe.Scheme, pe.Data, []byte(u.plain), u.name())
			if err != nil || !good {
				t.Errorf("%s: {%s} does not verify: %v", uid, pe.Scheme, err)
			}
			if bad, _ := schemes.Verify(pe.Scheme, pe.Data, []byte(u.plain+"x"), u.name()); bad {
				t.Errorf("%s: wrong password verifies", uid)
			}
			if v, _ := pe.Fields.Get("cn"); v != uid {
				t.Errorf("%s: cn (from uid) = %q", uid, v)
			}
			if v, _ := pe.Fields.Get("userdb_home"); v != "example.org/"+uid {
				t.Errorf("%s: userdb_home = %q", uid, v)
			}
			for _, k := range []string{"userdb_uid", "userdb_gid"} {
				if v, _ := pe.Fields.Get(k); v == "" {
					t.Errorf("%s: no %s in %s", uid, k, pe.Fields)
				}
			}
			// The right scheme for each kind of stored value.
			want := map[string]string{"ssha": "SSHA", "crypt": "CRYPT", "plain": "PLAIN", "bare": "PLAIN", "multi": "PLAIN"}[uid]
			if pe.Scheme != want {
				t.Errorf("%s: scheme %q, want %q", uid, pe.Scheme, want)
			}

			fs, err := d.LookupUser(ctx, req(u.name()))
			if err != nil || fs.Outcome != backends.Found {
				t.Errorf("%s: userdb found=%v err=%v", uid, fs.Outcome, err)
				continue
			}
			if v, _ := fs.Fields.Get("home"); v != "/var/mail/example.org/"+uid {
				t.Errorf("%s: home = %q", uid, v)
			}
			if v, _ := fs.Fields.Get("mail"); v != u.name() {
				t.Errorf("%s: mail = %q (multi-valued: the first value)", uid, v)
			}
			uidv, _ := fs.Fields.Get("uid")
			gidv, _ := fs.Fields.Get("gid")
			if uidv == "" || gidv == "" || uidv == gidv {
				t.Errorf("%s: uid %q gid %q", uid, uidv, gidv)
			}
		}
		// status is not valid: refused as unknown, by both.
		for _, name := range []string{"locked@example.org", "nosuch@example.org", "ssha", "", "ssha@example.net",
			"*@example.org", "ssha@example.org)(status=*", "ssha@example.org,dc=control", "ssha@*", "ssha@example.org\x00",
			"ssha@ex+ample.org", "ssha@#example.org", "ssha@ example.org"} {
			if ans, err := d.LookupPass(ctx, req(name)); ans.Outcome != backends.Unknown || err != nil {
				t.Errorf("passdb %q: found=%v err=%v, want not found", name, ans.Outcome, err)
			}
			if ans, err := d.LookupUser(ctx, req(name)); ans.Outcome != backends.Unknown || err != nil {
				t.Errorf("userdb %q: found=%v err=%v, want not found", name, ans.Outcome, err)
			}
		}
		// Mode (a) through VerifyPass.
		u := dir.prod["crypt"]
		if ans, err := d.VerifyPass(ctx, req(u.name()), []byte(u.plain)); ans.Outcome != backends.Found || err != nil {
			t.Errorf("VerifyPass right: %v err=%v", ans.Outcome, err)
		}
		if ans, err := d.VerifyPass(ctx, req(u.name()), []byte("nope")); ans.Outcome != backends.Mismatch || err != nil {
			t.Errorf("VerifyPass wrong: %v err=%v", ans.Outcome, err)
		}
	})

	t.Run("acl-hides-password", func(t *testing.T) {
		d := testDB(t, prodConf(dir.URI, ""))
		pe, err := d.LookupPass(ctx, req("secret@example.org"))
		if err != nil || pe.Outcome != backends.Found || pe.HasPassword {
			t.Errorf("found=%v err=%v password=%v: the service account must not read it", pe.Outcome, err, pe.HasPassword)
		}
	})

	t.Run("auth-bind", func(t *testing.T) {
		// A pool of one connection: every bind reuses the connection the
		// previous user bound on.
		d := testDB(t, prodConf(dir.URI, "auth_bind = yes\nauthd_pool_size = 1\n"))
		if !d.VerifiesPasswords() {
			t.Fatal("AuthBind() = false")
		}
		checkBinds(t, d, dir, true)
		// LookupPass still finds the user (PASS, userdb prefetch) but
		// reads no password.
		pe, err := d.LookupPass(ctx, req("ssha@example.org"))
		if err != nil || pe.Outcome != backends.Found || pe.HasPassword {
			t.Errorf("LookupPass: found=%v err=%v password=%v", pe.Outcome, err, pe.HasPassword)
		}
		if v, _ := pe.Fields.Get("userdb_home"); v != "example.org/ssha" {
			t.Errorf("fields %s", pe.Fields)
		}
		if ans, err := d.VerifyPass(ctx, req("locked@example.org"), []byte("lockedpw")); ans.Outcome != backends.Unknown || err != nil {
			t.Errorf("locked: %v err=%v", ans.Outcome, err)
		}
		// An empty password never logs in (a bind without one would be an
		// unauthenticated bind, which succeeds), and the pool's one
		// connection stays usable.
		if ans, err := d.VerifyPass(ctx, req("ssha@example.org"), nil); ans.Outcome != backends.Mismatch || err != nil {
			t.Errorf("empty password: %v err=%v", ans.Outcome, err)
		}
		checkBinds(t, d, dir, true)
	})

	t.Run("auth-bind-userdn", func(t *testing.T) {
		d := testDB(t, prodConf(dir.URI, "auth_bind = yes\nauth_bind_userdn = uid=%n,ou=hidden,dc=%d,dc=control,dc=isp\n"))
		checkBinds(t, d, dir, false)
		// base and filter use %d and %u, the DN template %n and %d: %n
		// with %d collapses into %u (docs/protocol.md §5.9).
		if got := d.PassCacheKey().String(); got != "%u" {
			t.Errorf("cache key %q", got)
		}
	})

	t.Run("multi-values", func(t *testing.T) {
		d := testDB(t, prodConf(dir.URI, "user_attrs = authdGroup=gid,mail=mail,mail=all=<%$>\n"))
		fs, err := d.LookupUser(ctx, req("multi@example.org"))
		if err != nil || fs.Outcome != backends.Found {
			t.Fatalf("found=%v err=%v", fs.Outcome, err)
		}
		if got := fs.Fields.String(); got != "gid=10,20 mail=multi@example.org all=<multi@example.org>" {
			t.Errorf("fields %s", got)
		}
	})

	t.Run("close-leaves-no-goroutines", func(t *testing.T) {
		before := runtime.NumGoroutine()
		d, err := New(writeConf(t, conformanceConf(serviceHead(dir.URI))+"auth_bind = yes\n"), nil)
		if err != nil {
			t.Fatal(err)
		}
		var wg sync.WaitGroup
		var logins atomic.Int64
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for _, u := range conformance.Users {
					d.LookupPass(ctx, req(u.Name))
					if ans, _ := d.VerifyPass(ctx, req(u.Name), []byte(u.Plain)); ans.Outcome == backends.Found {
						logins.Add(1)
					}
				}
			}()
		}
		wg.Wait()
		if logins.Load() == 0 {
			t.Fatal("no login succeeded: the connections under test were never used")
		}
		d.Close()
		deadline := time.Now().Add(3 * time.Second)
		for runtime.NumGoroutine() > before {
			if time.Now().After(deadline) {
				buf := make([]byte, 1<<16)
				t.Fatalf("%d goroutines before, %d after Close:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
			}
			time.Sleep(10 * time.Millisecond)
		}
		if _, err := d.LookupPass(ctx, req("alice@example.com")); err == nil {
			t.Error("lookup after Close succeeded")
		}
	})

	t.Run("secrets-stay-out-of-logs", func(t *testing.T) {
		var buf strings.Builder
		var mu sync.Mutex
		log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return buf.Write(p)
		}), &slog.HandlerOptions{Level: slog.LevelDebug}))
		for _, extra := range []string{
			"auth_bind = yes\n",
			// mail twice: a multi-valued password attribute is warned
			// about by name only.
			"pass_attrs = mail=password,userPassword=userdb_x\n",
			"auth_bind = yes\nauth_bind_userdn = uid=%n,ou=hidden,dc=%d,dc=control,dc=isp\n",
		} {
			d, err := New(writeConf(t, prodConf(dir.URI, extra)), log)
			if err != nil {
				t.Fatal(err)
			}
			answered := 0
			for _, uid := range []string{"secret", "ssha", "multi"} {
				u := dir.prod[uid]
				d.LookupPass(ctx, req(u.name()))
				d.LookupUser(ctx, req(u.name()))
				if _, err := d.VerifyPass(ctx, req(u.name()), []byte(u.plain)); err == nil {
					answered++
				}
				d.VerifyPass(ctx, req(u.name()), []byte(u.plain+"-wrong"))
			}
			if answered == 0 {
				t.Errorf("%q: no password check got an answer, so nothing secret was near the log", extra)
			}
			d.Close()
		}
		bad, err := New(writeConf(t, strings.Replace(prodConf(dir.URI, ""), "dnpass = "+servicePW, "dnpass = wrong-dnpass", 1)), log)
		if err != nil {
			t.Fatal(err)
		}
		_, err = bad.LookupPass(ctx, req("ssha@example.org"))
		bad.Close()
		mu.Lock()
		out := buf.String() + fmt.Sprint(err)
		mu.Unlock()
		if !strings.Contains(out, "multiple values") {
			t.Errorf("no multi-value warning logged:\n%s", out)
		}
		for _, secret := range []string{servicePW, "wrong-dnpass", "secretpw", "sshapw", "multipw", "second@example.org"} {
			if strings.Contains(out, secret) {
				t.Errorf("log or error shows %q:\n%s", secret, out)
			}
		}
	})

	t.Run("wrong-service-password", func(t *testing.T) {
		d := testDB(t, strings.Replace(prodConf(dir.URI, ""), "dnpass = "+servicePW, "dnpass = wrong", 1))
		if ans, err := d.LookupPass(ctx, req("ssha@example.org")); err == nil {
			t.Errorf("found=%v err=%v, want an error", ans.Outcome, err)
		} else if strings.Contains(err.Error(), "wrong") {
			t.Errorf("error shows dnpass: %v", err)
		}
	})
}

// checkBinds runs the auth-bind checks shared by the search and userdn
// forms: the hidden user (whose userPassword the service account cannot
// read) logs in by binding.
func checkBinds(t *testing.T, d *DB, dir *directory, search bool) {
	ctx := context.Background()
	sec := dir.prod["secret"]
	for i := 0; i < 3; i++ {
		pe, err := d.VerifyPass(ctx, req(sec.name()), []byte(sec.plain))
		if pe.Outcome != backends.Found || err != nil {
			t.Errorf("right password: %v err=%v", pe.Outcome, err)
		}
		if search {
			if v, _ := pe.Fields.Get("userdb_home"); v != "example.org/secret" || pe.HasPassword {
				t.Errorf("fields %s (password %v)", pe.Fields, pe.HasPassword)
			}
		}
		if ans, err := d.VerifyPass(ctx, req(sec.name()), []byte("wrong")); ans.Outcome != backends.Mismatch || err != nil {
			t.Errorf("wrong password: %v err=%v", ans.Outcome, err)
		}
		if ans, err := d.VerifyPass(ctx, req(sec.name()), nil); ans.Outcome != backends.Mismatch || err != nil {
			t.Errorf("empty password: %v err=%v", ans.Outcome, err)
		}
	}
	// Unknown users: with a search, "not found"; with a DN template the
	// server answers invalidCredentials for a DN that does not exist, so
	// it is a wrong password (as in Dovecot). Never an error, never ok.
	for _, name := range []string{"nosuch@example.org", "*@example.org", "secret,ou=people@example.org", "secret@example.org,dc=x", "@example.org", "secret"} {
		ans, err := d.VerifyPass(ctx, req(name), []byte(sec.plain))
		want := backends.Mismatch
		if search {
			want = backends.Unknown
		}
		if ans.Outcome != want && !(!search && ans.Outcome == backends.Unknown) || err != nil {
			t.Errorf("%q: %v err=%v, want %v", name, ans.Outcome, err, want)
		}
	}
	if !search {
		return
	}
	for _, uid := range []string{"ssha", "crypt"} {
		u := dir.prod[uid]
		if ans, err := d.VerifyPass(ctx, req(u.name()), []byte(u.plain)); ans.Outcome != backends.Found || err != nil {
			t.Errorf("%s: %v err=%v", uid, ans.Outcome, err)
		}
		if ans, err := d.VerifyPass(ctx, req(u.name()), []byte(u.plain+"x")); ans.Outcome != backends.Mismatch || err != nil {
			t.Errorf("%s wrong: %v err=%v", uid, ans.Outcome, err)
		}
	}
}

// TestUnreachable: nothing listens, so every lookup is an error ("could
// not tell"), never "not found"; New itself does not connect.
func TestUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	d := testDB(t, conformanceConf(serviceHead("ldap://"+addr))+"auth_bind = yes\n")
	ctx := context.Background()
	var errs []error
	ans, err := d.LookupPass(ctx, req("alice@example.com"))
	if err == nil {
		t.Errorf("passdb: %v, want an error", ans.Outcome)
	}
	errs = append(errs, err)
	uans, err := d.LookupUser(ctx, req("alice@example.com"))
	if err == nil {
		t.Errorf("userdb: %v, want an error", uans.Outcome)
	}
	errs = append(errs, err)
	ans, err = d.VerifyPass(ctx, req("alice@example.com"), []byte("x"))
	if err == nil {
		t.Errorf("verify: %v, want an error", ans.Outcome)
	}
	errs = append(errs, err)
	err = d.IterateUsers(ctx, func(string) bool { return true })
	if err == nil {
		t.Error("iterate: no error")
	}
	errs = append(errs, err)
	for _, err := range errs {
		if err != nil && strings.Contains(err.Error(), servicePW) {
			t.Errorf("error shows dnpass: %v", err)
		}
	}
	t.Logf("error as reported: %v", errs[0])
}

// TestTimeout: a server that accepts and never answers. The request's
// deadline bounds the lookup, whether it hangs in the service bind or in
// the search, and the answer is an error.
func TestTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	for name, head := range map[string]string{
		"bind":   serviceHead("ldap://" + l.Addr().String()),
		"search": "uris = ldap://" + l.Addr().String() + "\n",
	} {
		t.Run(name, func(t *testing.T) {
			d := testDB(t, conformanceConf(head))
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			ans, err := d.LookupPass(ctx, req("alice@example.com"))
			if err == nil {
				t.Errorf("found=%v err=%v", ans.Outcome, err)
			}
			// The bound is loose for loaded machines; what matters is
			// that the lookup does not wait for authd_timeout (10s).
			if el := time.Since(start); el > 5*time.Second {
				t.Errorf("took %v with a 300ms deadline", el)
			}
		})
	}
}

// TestIterateSizeLimit: slapd counts paged results against the size limit
// of the identity (500 by default). A listing cut short by it is an
// error, never a silently short list; with the limit raised for the
// service account every user is listed across pages.
func TestIterateSizeLimit(t *testing.T) {
	testenv.Require(t, "slapd", "slapadd", "slappasswd")
	const users = 600
	var l ldif
	l.entry(suffix, "objectClass", "dcObject", "objectClass", "organization", "o", "control", "dc", "control")
	l.entry("ou=services,"+suffix, "objectClass", "organizationalUnit", "ou", "services")
	l.entry(serviceDN, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject", "cn", "authd",
		"userPassword", testenv.Slappasswd(t, "-s", servicePW))
	for i := range users {
		u := fmt.Sprintf("u%04d", i)
		l.entry("uid="+u+","+suffix, "objectClass", "inetOrgPerson", "objectClass", "posixAccount",
			"uid", u, "cn", u, "sn", u, "uidNumber", "1", "gidNumber", "1", "homeDirectory", "/home/"+u)
	}
	for name, tc := range map[string]struct {
		config string
		want   int
	}{
		"default-limit": {"", 500},
		"unlimited":     {`limits dn.exact="` + serviceDN + `" size=unlimited`, users},
	} {
		t.Run(name, func(t *testing.T) {
			s := testenv.StartSlapd(t, testenv.SlapdOptions{Suffix: suffix, LDIF: l.String(), Config: tc.config})
			d := testDB(t, serviceHead(s.URI)+"base = "+suffix+"\n")
			seen := map[string]bool{}
			err := d.IterateUsers(context.Background(), func(u string) bool { seen[u] = true; return true })
			if len(seen) != tc.want {
				t.Errorf("listed %d users, want %d", len(seen), tc.want)
			}
			if (err != nil) != (tc.want < users) {
				t.Errorf("err = %v", err)
			}
		})
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
