package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/authd-project/authd/internal/testenv"
)

// TestFail2banFilter runs Debian's fail2ban-regex with the filter in
// deploy/fail2ban over authd's own log after an attack: every attacking
// address is found, in both log formats, and nothing else (not the
// legitimate users, not a user name crafted to look like an address).
func TestFail2banFilter(t *testing.T) {
	testenv.Require(t, "fail2ban-regex")
	filter, err := filepath.Abs("../../deploy/fail2ban/filter.d/authd.conf")
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range []string{"text", "json"} {
		t.Run(format, func(t *testing.T) {
			conf := strings.Replace(penaltyConf, "auth_failure_delay = 0", "auth_failure_delay = 0\nauth_verbose = yes\nlog_format = "+format, 1)
			p := startAuthd(t, conf, "run/auth-client", map[string]string{"users": penaltyUsers})
			sock := p.path("run/auth-client")
			attackers := []string{"198.51.100.7", "198.51.100.8", "2001:db8:bad::1", "2001:db8:bad:1::2"}
			for _, ip := range attackers {
				plainAuth(t, sock, ip, "victim@example.com", "guess")
				plainAuth(t, sock, ip, "nosuch@example.com", "guess")
			}
			// A name crafted to look like a field of the line.
			plainAuth(t, sock, "198.51.100.9", `x" rip=203.0.113.66 y`, "guess")
			attackers = append(attackers, "198.51.100.9")
			mustLogIn(t, sock, "192.0.2.10", "owner@example.com", "owner-password")
			// A reply can arrive before its log line has come through
			// authd's stderr pipe: wait for the last failure's line.
			waitFor(t, func() bool { return strings.Contains(p.stderr.String(), "198.51.100.9") })

			log := filepath.Join(t.TempDir(), "authd.log")
			if err := os.WriteFile(log, []byte(p.stderr.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			found := fail2banIPs(t, log, filter)
			slices.Sort(attackers)
			if !slices.Equal(found, attackers) {
				t.Errorf("fail2ban-regex found %q, want %q\nlog:\n%s", found, attackers, p.stderr.String())
			}
		})
	}
}

// fail2banIPs returns the distinct addresses fail2ban-regex matches in log.
func fail2banIPs(t *testing.T, log, filter string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Debian's own python3: fail2ban is a Debian package, not a module of
	// whatever python3 comes first on PATH.
	cmd := exec.CommandContext(ctx, "/usr/bin/python3", fail2banRegex(t), "-o", "ip", log, filter)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("fail2ban-regex: %v\n%s", err, out)
	}
	var ips []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !slices.Contains(ips, l) {
			ips = append(ips, l)
		}
	}
	slices.Sort(ips)
	return ips
}

func fail2banRegex(t *testing.T) string {
	p, err := exec.LookPath("fail2ban-regex")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
