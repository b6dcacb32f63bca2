package main

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/testenv"
)

// TestLDAPOutageThroughAuthd: slapd is killed while logins run through
// authd's client socket. Every answer to a right password is OK or a
// temporary failure — never FAIL, which Postfix and Dovecot would report
// as a wrong password — and logins work again once slapd is back, without
// touching authd. Both ways of checking the password: the service
// account reading userPassword, and auth_bind.
func TestLDAPOutageThroughAuthd(t *testing.T) {
	testenv.Require(t, "slapd", "slappasswd")
	const suffix = "dc=control,dc=isp"
	const nusers = 300
	svc := testenv.Slappasswd(t, "-s", "svcpw")
	var ldif strings.Builder
	entry := func(dn string, kv ...string) {
		fmt.Fprintf(&ldif, "dn: %s\n", dn)
		for i := 0; i+1 < len(kv); i += 2 {
			fmt.Fprintf(&ldif, "%s: %s\n", kv[i], kv[i+1])
		}
		ldif.WriteString("\n")
	}
	entry(suffix, "objectClass", "dcObject", "objectClass", "organization", "o", "control", "dc", "control")
	entry("ou=services,"+suffix, "objectClass", "organizationalUnit", "ou", "services")
	entry("cn=authd,ou=services,"+suffix, "objectClass", "organizationalRole", "objectClass", "simpleSecurityObject", "cn", "authd", "userPassword", svc)
	entry("dc=example.com,"+suffix, "objectClass", "domain", "dc", "example.com")
	for i := range nusers {
		name := fmt.Sprintf("u%03d@example.com", i)
		entry("cn="+name+",dc=example.com,"+suffix,
			"objectClass", "inetOrgPerson", "objectClass", "posixAccount", "objectClass", "mailStatus",
			"cn", name, "sn", "u", "uid", fmt.Sprintf("u%03d", i),
			"uidNumber", fmt.Sprint(5000+i), "gidNumber", "5000", "homeDirectory", "example.com/u",
			// Bare cleartext: slapd checks it on a bind (it knows no
			// {PLAIN}), and authd reads it with default_pass_scheme = PLAIN.
			"userPassword", fmt.Sprintf("pw%03d", i), "status", "valid")
	}
	sl := testenv.StartSlapd(t, testenv.SlapdOptions{Suffix: suffix, Schema: ldapTestSchema, ACL: ldapProdACL,
		LDIF: ldif.String(), Config: "index cn,status eq"})
	hostport := strings.TrimPrefix(sl.URI, "ldap://")
	conf := `
base_dir = $DIR/run
auth_mechanisms = plain
auth_failure_delay = 0
passdb {
  driver = ldap
  args = $DIR/dovecot-ldap.conf.ext
}
userdb {
  driver = static
  args = uid=5000 gid=5000 home=/var/mail/%u
}
`
	for _, mode := range []string{"search", "auth_bind"} {
		t.Run(mode, func(t *testing.T) {
			ldapConf := ldapServiceAccount + fmt.Sprintf(ldapProdConf, hostport)
			if mode == "auth_bind" {
				ldapConf += "auth_bind = yes\n"
			}
			p := startAuthd(t, conf, "run/auth-client", map[string]string{"dovecot-ldap.conf.ext": ldapConf})
			ldapOutage(t, sl, p.path("run/auth-client"), nusers)
		})
	}
}

func ldapOutage(t *testing.T, sl *testenv.Slapd, client string, nusers int) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	auth := func(c *dovecot.AuthClient, i int) string {
		r, err := c.Plain(ctx, []string{"service=imap"}, "", fmt.Sprintf("u%03d@example.com", i), fmt.Sprintf("pw%03d", i))
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
	c, err := dovecot.DialAuth(ctx, client)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got := auth(c, 0); got != "OK" {
		t.Fatalf("before the outage: %s", got)
	}

	var next atomic.Int64
	var stop atomic.Bool
	var mu sync.Mutex
	counts := map[string]int{}
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cc, err := dovecot.DialAuth(ctx, client)
			if err != nil {
				t.Error(err)
				return
			}
			defer cc.Close()
			for !stop.Load() {
				got := auth(cc, int(next.Add(1)%int64(nusers)))
				mu.Lock()
				counts[got]++
				mu.Unlock()
				if got != "OK" && got != "TEMPFAIL" {
					t.Errorf("a right password during the outage: %s (must be OK or a temporary failure)", got)
					return
				}
			}
		}()
	}
	// Waits on what was seen, not on the clock, so a loaded machine only
	// makes the test slower.
	waitFor := func(answer string, n int) {
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			mu.Lock()
			got := counts[answer]
			mu.Unlock()
			if got >= n {
				return
			}
		}
		stop.Store(true)
		wg.Wait()
		t.Fatalf("waited 20 s for %d answers %s", n, answer)
	}
	waitFor("OK", 50)
	sl.Kill()
	mu.Lock()
	atKill := counts["TEMPFAIL"]
	mu.Unlock()
	waitFor("TEMPFAIL", atKill+50)
	stop.Store(true)
	wg.Wait()
	t.Logf("answers around the outage: %v", counts)
	if counts["OK"] == 0 || counts["TEMPFAIL"] <= atKill {
		t.Fatalf("want logins before the kill and temporary failures after it: %v", counts)
	}

	sl.Restart(t)
	restarted := time.Now()
	for i := 1; ; i++ {
		if got := auth(c, i%nusers); got == "OK" {
			break
		} else if got != "TEMPFAIL" {
			t.Fatalf("after the restart: %s", got)
		}
		if time.Since(restarted) > 10*time.Second {
			t.Fatal("logins still failing 10 s after slapd came back")
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("logins work again %v after the restart", time.Since(restarted).Round(time.Millisecond))
	// And every user, not just the one that got through first.
	for i := range nusers {
		if got := auth(c, i); got != "OK" {
			t.Fatalf("u%03d after the restart: %s", i, got)
		}
	}
}
