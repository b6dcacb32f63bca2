// Package deploy_test checks what an operator installs: every example
// configuration loads, the systemd unit keeps its hardening, and the alert
// rules only use metrics that exist. deploy/ itself has no Go code.
package deploy_test

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/testenv"
)

// TestExamplesLoad loads every example through config.Load: the syntax,
// every setting, the listeners and the grpc and metrics sections. The
// drivers are not built here (sql, ldap and pam need their servers or the
// PAM build); `authd check` covers that.
func TestExamplesLoad(t *testing.T) {
	confs, err := filepath.Glob("examples/*.conf")
	if err != nil {
		t.Fatal(err)
	}
	exts, err := filepath.Glob("examples/*.ext")
	if err != nil {
		t.Fatal(err)
	}
	if len(confs) < 4 {
		t.Fatalf("only %d example configurations", len(confs))
	}
	referenced := map[string]bool{}
	for _, path := range confs {
		t.Run(filepath.Base(path), func(t *testing.T) {
			cfg, err := config.Load(path)
			if err != nil {
				for _, e := range config.AsErrorList(err) {
					t.Error(e)
				}
				t.Fatal(err)
			}
			for _, w := range cfg.Warnings {
				t.Errorf("warning: %v", w)
			}
			if len(cfg.Ignored) > 0 {
				t.Errorf("settings ignored as another Dovecot service's: %v", cfg.Ignored)
			}
			if len(cfg.Passdbs) == 0 || len(cfg.Userdbs) == 0 {
				t.Errorf("%d passdbs, %d userdbs", len(cfg.Passdbs), len(cfg.Userdbs))
			}
			if cfg.BaseDir != "/run/authd" {
				t.Errorf("base_dir = %s; the systemd unit's RuntimeDirectory is /run/authd", cfg.BaseDir)
			}
			if cfg.GRPC.Listen == "" || cfg.Metrics.Listen == "" {
				t.Errorf("grpc listen %q, metrics listen %q: every example shows both", cfg.GRPC.Listen, cfg.Metrics.Listen)
			}
			// Every socket is somewhere the unit lets authd write.
			for _, l := range cfg.Listeners {
				dir := filepath.Dir(l.Path)
				if !strings.HasPrefix(l.Path, "/run/authd/") && dir != "/var/spool/postfix/private" {
					t.Errorf("listener %s at %s: not under /run/authd or ReadWritePaths", l.Name, l.Path)
				}
			}
			// A driver's args naming /etc/authd/X must ship X as an example.
			for _, db := range append(append([]config.DB{}, cfg.Passdbs...), cfg.Userdbs...) {
				if ext, ok := strings.CutPrefix(db.Args, "/etc/authd/"); ok && strings.HasSuffix(ext, ".ext") {
					referenced[ext] = true
					if _, err := os.Stat(filepath.Join("examples", ext)); err != nil {
						t.Errorf("%s args = %s: no examples/%s", db.Driver, db.Args, ext)
					}
				}
			}
		})
	}
	for _, ext := range exts {
		if !referenced[filepath.Base(ext)] {
			t.Errorf("%s is not used by any example", ext)
		}
	}
}

// unit is a parsed systemd unit: section → key → values in order.
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && line[len(line)-1] == ']':
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not key=value in a section: %q", path, n, line)
			}
			u[section][strings.TrimSpace(k)] = append(u[section][strings.TrimSpace(k)], strings.TrimSpace(v))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestSystemdUnit pins the unit's hardening, and runs systemd-analyze
// verify on it when systemd is installed.
func TestSystemdUnit(t *testing.T) {
	u := parseUnit(t, "authd.service")
	svc := u["Service"]
	if svc == nil || u["Unit"] == nil || u["Install"] == nil {
		t.Fatalf("sections: %v", u)
	}
	want := map[string]string{
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"PrivateDevices":          "yes",
		"RuntimeDirectory":        "authd",
		"ExecReload":              "/bin/kill -HUP $MAINPID",
		"ExecStart":               "/usr/sbin/authd serve -c /etc/authd/authd.conf",
		"User":                    "authd",
		"RestrictSUIDSGID":        "yes",
		"SystemCallArchitectures": "native",
		"MemoryDenyWriteExecute":  "yes",
		"LimitCORE":               "0",
	}
	for k, v := range want {
		if got := svc[k]; len(got) != 1 || got[0] != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	// Capabilities: socket ownership only.
	allowed := []string{"CAP_CHOWN", "CAP_FOWNER"}
	for _, k := range []string{"AmbientCapabilities", "CapabilityBoundingSet"} {
		if len(svc[k]) == 0 {
			t.Errorf("%s is not set", k)
		}
		for _, v := range svc[k] {
			for _, c := range strings.Fields(v) {
				if !slices.Contains(allowed, c) {
					t.Errorf("%s grants %s", k, c)
				}
			}
		}
	}
	if env := strings.Join(svc["Environment"], " "); !strings.Contains(env, "GOMEMLIMIT=") {
		t.Errorf("Environment = %q: no GOMEMLIMIT", env)
	}
	if !slices.Contains(svc["ReadWritePaths"], "-/var/spool/postfix/private") {
		t.Errorf("ReadWritePaths = %q: the Postfix socket directory is missing", svc["ReadWritePaths"])
	}
	if len(svc["SystemCallFilter"]) == 0 || len(svc["RestrictAddressFamilies"]) == 0 {
		t.Error("no system call or address family filter")
	}

	sa, err := exec.LookPath("systemd-analyze")
	if err != nil {
		t.Skip("systemd-analyze not installed: static checks only")
	}
	// verify insists that ExecStart's binary exists: point it at one that
	// does, in a copy.
	data, err := os.ReadFile("authd.service")
	if err != nil {
		t.Fatal(err)
	}
	tmp := filepath.Join(t.TempDir(), "authd.service")
	if err := os.WriteFile(tmp, []byte(strings.ReplaceAll(string(data), "/usr/sbin/authd", "/bin/true")), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(sa, "verify", tmp).CombinedOutput()
	if err != nil || len(strings.TrimSpace(string(out))) > 0 {
		t.Errorf("systemd-analyze verify: %v\n%s", err, out)
	}
}

// TestAlertRules: every authd_ series the rules use is a documented
// metric, and promtool (when installed) accepts and unit-tests them.
func TestAlertRules(t *testing.T) {
	rules, err := os.ReadFile("prometheus/authd-alerts.yml")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\bauthd_[a-z_]+`).FindAllString(string(rules), -1)
	if len(names) < 10 {
		t.Fatalf("only %d metric references in the rules", len(names))
	}
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !strings.Contains(string(doc), "`"+base+"`") {
			t.Errorf("the rules use %s, which docs/metrics.md does not list", n)
		}
	}
	alerts := regexp.MustCompile(`(?m)^\s+- alert: (\w+)$`).FindAllStringSubmatch(string(rules), -1)
	severities := regexp.MustCompile(`(?m)^\s+severity: (critical|warning|info)$`).FindAllString(string(rules), -1)
	if len(alerts) == 0 || len(alerts) != len(severities) {
		t.Errorf("%d alerts, %d severities", len(alerts), len(severities))
	}

	// Debian: prometheus. A skip without it, a failure in CI.
	testenv.Require(t, "promtool")
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "authd-alerts.yml"}, {"test", "rules", "authd-alerts.test.yml"}} {
		cmd := exec.Command(promtool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}
