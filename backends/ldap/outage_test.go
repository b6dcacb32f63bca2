package ldap

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/conformance"
	"github.com/authd-project/authd/internal/testenv"
	"github.com/authd-project/authd/schemes"
)

// TestOutage kills slapd under a load of lookups and starts it again. Every
// answer must be right or an error: never "not found", never another
// user's password. The same DB must recover by itself.
func TestOutage(t *testing.T) {
	dir := startDirectory(t, dirOptions{})
	d := testDB(t, conformanceConf(serviceHead(dir.URI))+"authd_pool_size = 4\nauthd_timeout = 2 secs\n")

	var found, notFound, wrong, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			u := conformance.Users[i%len(conformance.Users)]
			wantScheme, wantData := schemes.SplitStrict(u.Password)
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
				pe, err := d.LookupPass(ctx, req(u.Name))
				ok := pe.Outcome == backends.Found
				cancel()
				switch {
				case err != nil:
					failed.Add(1)
					time.Sleep(2 * time.Millisecond) // the server is down: don't spin
				case !ok:
					notFound.Add(1)
				case pe.Scheme != wantScheme || pe.Data != wantData:
					wrong.Add(1)
				default:
					found.Add(1)
				}
			}
		}()
	}
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
		wg.Wait()
	}()

	// Poll rather than sleep: on a loaded machine (-race, other jobs) a
	// fixed pause may see nothing happen.
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 10s (found %d, not found %d, wrong %d, errors %d)",
					what, found.Load(), notFound.Load(), wrong.Load(), failed.Load())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor("lookups before the outage", func() bool { return found.Load() >= 100 })
	dir.Kill()
	before := failed.Load()
	waitFor("errors during the outage", func() bool { return failed.Load() >= before+100 })
	errorsDuring := failed.Load()
	dir.Restart(t)
	restarted := time.Now()
	base := found.Load()
	for found.Load() < base+200 {
		if time.Since(restarted) > 10*time.Second {
			t.Fatalf("no recovery 10s after the restart: %d lookups succeeded since", found.Load()-base)
		}
		time.Sleep(10 * time.Millisecond)
	}
	recovery := time.Since(restarted)
	close(stop)
	wg.Wait()

	t.Logf("found %d, errors %d (during the outage %d), recovered %v after the restart", found.Load(), failed.Load(), errorsDuring, recovery)
	if n := notFound.Load(); n != 0 {
		t.Errorf("%d lookups said 'not found' during the outage", n)
	}
	if n := wrong.Load(); n != 0 {
		t.Errorf("%d lookups returned the wrong password", n)
	}
	if errorsDuring == 0 {
		t.Error("no errors while the server was down: the lookups did not reach it?")
	}
	// Recovered for good: a plain sequential run.
	conformance.RunPassdb(t, d)
}

// TestFailover: with two URIs the second serves while the first is down,
// and traffic returns to the first once it is back.
func TestFailover(t *testing.T) {
	one := startDirectory(t, dirOptions{extra: map[string]string{"description": "one"}})
	two := startDirectory(t, dirOptions{extra: map[string]string{"description": "two"}})
	d := testDB(t, conformanceConf(serviceHead(one.URI+" "+two.URI))+
		"user_attrs = description=server\nauthd_failback_interval = 500 ms\nauthd_pool_size = 4\n")
	ctx := context.Background()
	server := func() (string, error) {
		fs, err := d.LookupUser(ctx, req("alice@example.com"))
		if err != nil || fs.Outcome != backends.Found {
			return "", err
		}
		s, _ := fs.Fields.Get("server")
		return s, nil
	}
	if s, err := server(); s != "one" || err != nil {
		t.Fatalf("before: served by %q (%v), want one", s, err)
	}

	one.Kill()
	for i := range 20 {
		if s, err := server(); s != "two" || err != nil {
			t.Fatalf("lookup %d with the first server down: served by %q (%v), want two", i, s, err)
		}
	}
	// A concurrent burst too: every pooled connection must fail over.
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				if s, err := server(); s != "two" || err != nil {
					bad.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d concurrent lookups failed while the second server was up", n)
	}

	one.Restart(t)
	restarted := time.Now()
	for {
		s, err := server()
		if err != nil {
			t.Fatalf("lookup after the restart: %v", err)
		}
		if s == "one" {
			break
		}
		if time.Since(restarted) > 5*time.Second {
			t.Fatal("no failback to the first server 5s after it came back")
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("failback %v after the restart (authd_failback_interval 500 ms)", time.Since(restarted))

	// And the other way round: the second server going away is invisible.
	two.Stop()
	for range 5 {
		if s, err := server(); s != "one" || err != nil {
			t.Fatalf("after stopping the second server: %q %v", s, err)
		}
	}
}

// TestTLS: ldaps:// and StartTLS (tls = yes) against slapd with a
// certificate from a test CA, verified with tls_ca_cert_file.
func TestTLS(t *testing.T) {
	testenv.Require(t, "slapd")
	ca := testenv.NewCA(t)
	dir := startDirectory(t, dirOptions{tls: ca})
	cert, key := ca.Issue(t, testenv.Dir(t), "client", "authd-client")
	ctx := context.Background()
	for name, tc := range map[string]struct {
		head string
		ok   bool
	}{
		"ldaps":       {serviceHead(dir.LDAPSURI) + "tls_ca_cert_file = " + ca.CertFile + "\n", true},
		"starttls":    {serviceHead(dir.URI) + "tls = yes\ntls_ca_cert_file = " + ca.CertFile + "\n", true},
		"client-cert": {serviceHead(dir.LDAPSURI) + "tls_ca_cert_file = " + ca.CertFile + "\ntls_cert_file = " + cert + "\ntls_key_file = " + key + "\n", true},
		// The certificate is the identity: SASL EXTERNAL over TLS reads
		// userPassword only because the certificate was sent (anonymous
		// cannot), and fails without one.
		"client-cert-sasl-external": {"uris = " + dir.LDAPSURI + "\nsasl_bind = yes\nsasl_mech = EXTERNAL\ntls_ca_cert_file = " + ca.CertFile +
			"\ntls_cert_file = " + cert + "\ntls_key_file = " + key + "\n", true},
		"sasl-external-no-cert": {"uris = " + dir.LDAPSURI + "\nsasl_bind = yes\nsasl_mech = EXTERNAL\ntls_ca_cert_file = " + ca.CertFile + "\n", false},
		"ldaps-untrusted":       {serviceHead(dir.LDAPSURI), false},
		"starttls-untrust":      {serviceHead(dir.URI) + "tls = yes\n", false},
		"require-never":         {serviceHead(dir.LDAPSURI) + "tls_require_cert = never\n", true},
	} {
		t.Run(name, func(t *testing.T) {
			d := testDB(t, conformanceConf(tc.head))
			pe, err := d.LookupPass(ctx, req("alice@example.com"))
			found := pe.Outcome == backends.Found
			if tc.ok {
				if err != nil || !found || !pe.HasPassword {
					t.Errorf("found=%v err=%v", found, err)
				}
				return
			}
			// An unverifiable server (or a refused bind) is an error,
			// never "not found".
			if err == nil || found {
				t.Errorf("found=%v err=%v, want an error", found, err)
			}
		})
	}
}

// BenchmarkLookupPass measures parallel passdb lookups against a real
// slapd over loopback (search with a service bind, the default pool).
func BenchmarkLookupPass(b *testing.B) {
	dir := startDirectory(b, dirOptions{})
	d := testDB(b, conformanceConf(serviceHead(dir.URI)))
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			u := conformance.Users[i%len(conformance.Users)]
			i++
			if ans, err := d.LookupPass(ctx, req(u.Name)); ans.Outcome != backends.Found || err != nil {
				b.Errorf("%s: found=%v err=%v", u.Name, ans.Outcome, err)
				return
			}
		}
	})
}
