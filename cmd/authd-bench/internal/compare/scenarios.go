package compare

import (
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/realserver"
)

// Scenario is one configuration both servers run with the same data and
// load. The auth settings are written once (Dovecot 2.3 syntax, which authd
// reads) and given to both; only the socket and path boilerplate differs.
type Scenario struct {
	Name    string `json:"name"`
	Title   string `json:"title"`
	Backend string `json:"backend"` // "passwd-file", "sql" (MariaDB), "pgsql", "sqlite" or "ldap"
	Scheme  string `json:"scheme"`  // stored scheme: PLAIN, SHA512-CRYPT, SSHA
	Cache   bool   `json:"cache"`   // auth cache on, filled by a warm-all pass before the first round
	// AuthBind: LDAP verifies by binding as the user (auth_bind_userdn,
	// no search).
	AuthBind bool `json:"auth_bind,omitempty"`
	// PenaltyBaseline compares authd with itself instead of with Dovecot:
	// side A runs with its brute-force defence off (penalty { enabled =
	// no }), side B as configured. The load then sends no no-penalty,
	// as a login process would not.
	PenaltyBaseline bool `json:"penalty_baseline,omitempty"`
	// UserAddrs: every user logs in from an address of its own
	// (load.Config.UserAddrs), so that the defence has addresses to
	// count, as in production.
	UserAddrs bool `json:"user_addrs,omitempty"`
	// Attack runs the load beside an attack (load.RunAttack: 1000
	// addresses guessing, the users from addresses of their own); the
	// rate and percentiles are the legitimate users'. B keeps authd's
	// failure delays (escalating to client_max_delay, 8 s), which hold
	// the attackers back; A, without the defence and with
	// auth_failure_delay = 0, answers them at once.
	Attack bool `json:"attack,omitempty"`
	// AttackNoDelay: B answers every failure at once too
	// (client_max_delay = 0), so the attackers go as fast as the server
	// answers them: the worst case for the users.
	AttackNoDelay bool `json:"attack_no_delay,omitempty"`

	// The goals of issue 11 (a 2-core reference machine): authd's rate
	// at least TargetRatio × Dovecot's (or, with PenaltyBaseline, B's
	// rate at least TargetRatio × A's: issue 15), and its p99 at most
	// TargetP99.
	TargetRatio float64       `json:"target_ratio,omitempty"`
	TargetP99   time.Duration `json:"-"`
	// Reference is Dovecot's rate on the reference machine, for context.
	Reference string `json:"reference,omitempty"`
}

// AllScenarios returns the comparisons make bench-compare runs, in order:
// a new slice on each call, so no caller can change another's list.
func AllScenarios() []Scenario {
	return []Scenario{
		{Name: "pf-plain", Title: "passwd-file {PLAIN}", Backend: "passwd-file", Scheme: "PLAIN",
			TargetRatio: 1.5, TargetP99: 5 * time.Millisecond, Reference: "≈78k"},
		{Name: "pf-sha512", Title: "passwd-file {SHA512-CRYPT}", Backend: "passwd-file", Scheme: "SHA512-CRYPT",
			TargetRatio: 1.7, Reference: "≈600"},
		{Name: "sql-plain", Title: "SQL {PLAIN}, no cache", Backend: "sql", Scheme: "PLAIN",
			TargetRatio: 1.5, Reference: "≈11k"},
		{Name: "sql-plain-cache", Title: "SQL {PLAIN}, cache warm", Backend: "sql", Scheme: "PLAIN", Cache: true},
		{Name: "sql-sha512", Title: "SQL {SHA512-CRYPT}, no cache", Backend: "sql", Scheme: "SHA512-CRYPT"},
		{Name: "sql-sha512-cache", Title: "SQL {SHA512-CRYPT}, cache warm", Backend: "sql", Scheme: "SHA512-CRYPT", Cache: true,
			TargetRatio: 30, Reference: "≈720"},
		{Name: "pg-plain", Title: "PostgreSQL {PLAIN}, no cache", Backend: "pgsql", Scheme: "PLAIN",
			TargetRatio: 1.5},
		{Name: "sqlite-plain", Title: "SQLite {PLAIN}, no cache", Backend: "sqlite", Scheme: "PLAIN",
			TargetRatio: 1.5},
		{Name: "ldap-ssha", Title: "LDAP {SSHA}, no cache", Backend: "ldap", Scheme: "SSHA",
			TargetRatio: 1.5, Reference: "≈10k"},
		{Name: "ldap-ssha-cache", Title: "LDAP {SSHA}, cache warm", Backend: "ldap", Scheme: "SSHA", Cache: true,
			TargetRatio: 1.2, Reference: "≈63k"},
		{Name: "ldap-authbind", Title: "LDAP auth_bind, no cache", Backend: "ldap", Scheme: "SSHA", AuthBind: true},
		{Name: "ldap-authbind-cache", Title: "LDAP auth_bind, cache warm", Backend: "ldap", Scheme: "SSHA", AuthBind: true, Cache: true,
			TargetRatio: 1.2, Reference: "≈63k"},
		// Issue 15: the defence costs at most 5 % of the rate, and under
		// an attack of 1000 addresses the users' p99 stays under 50 ms.
		{Name: "pf-plain-penalty", Title: "passwd-file {PLAIN}, defence on/off", Backend: "passwd-file", Scheme: "PLAIN",
			PenaltyBaseline: true, UserAddrs: true, TargetRatio: 0.95},
		{Name: "pf-plain-attack", Title: "passwd-file {PLAIN} under attack", Backend: "passwd-file", Scheme: "PLAIN",
			PenaltyBaseline: true, Attack: true, TargetP99: 50 * time.Millisecond},
		{Name: "pf-plain-attack-nodelay", Title: "passwd-file {PLAIN} under attack, no delays", Backend: "passwd-file", Scheme: "PLAIN",
			PenaltyBaseline: true, Attack: true, AttackNoDelay: true, TargetP99: 50 * time.Millisecond},
	}
}

// authdSettings are the authd-only settings of a PenaltyBaseline
// scenario's side: A (off) without the defence, B with it as configured,
// with AttackNoDelay answering failures at once.
func (s Scenario) authdSettings(off bool) string {
	switch {
	case !s.PenaltyBaseline:
		return ""
	case off:
		return "penalty {\n  enabled = no\n}\n"
	case s.AttackNoDelay:
		return "penalty {\n  client_max_delay = 0\n}\n"
	}
	return ""
}

// ScenarioNames lists the known names, for flag help.
func ScenarioNames() []string {
	var n []string
	for _, s := range AllScenarios() {
		n = append(n, s.Name)
	}
	return n
}

// SelectScenarios returns the named scenarios in their canonical order;
// names may be globs ("sql-*"); empty selects all.
func SelectScenarios(names []string) ([]Scenario, error) {
	if len(names) == 0 {
		return AllScenarios(), nil
	}
	var out []Scenario
	used := make([]bool, len(names))
	for _, s := range AllScenarios() {
		for i, n := range names {
			if ok, err := filepath.Match(n, s.Name); err != nil {
				return nil, fmt.Errorf("scenario pattern %q: %v", n, err)
			} else if ok {
				out = append(out, s)
				used[i] = true
				break
			}
		}
	}
	for i, n := range names {
		if !used[i] {
			return nil, fmt.Errorf("no scenario matches %q (known: %s)", n, strings.Join(ScenarioNames(), ", "))
		}
	}
	return out, nil
}

// env is what the scenarios' configs point at.
type env struct {
	dataDir     string // passwd-files and driver config files
	sqlSock     string // mariadbd's socket, and the account both servers use
	sqlUser     string
	sqlPassword string
	pgSockDir   string // the PostgreSQL cluster's socket directory, port and user (trust over the socket)
	pgPort      int
	pgUser      string
	sqliteFile  string // the SQLite database file
	ldapURI     string
}

// sqlColumn is the users-table column holding the password in scheme.
func sqlColumn(scheme string) string {
	if scheme == "SHA512-CRYPT" {
		return "password_crypt"
	}
	return "password_plain"
}

// sqlConf is a dovecot-sql.conf.ext, read by Dovecot's sql driver and
// authd's alike.
func sqlConf(e env, scheme string) string {
	return fmt.Sprintf(`driver = mysql
connect = host=%s dbname=mail user=%s password=%s
default_pass_scheme = PLAIN
password_query = SELECT username AS user, %s AS password FROM users WHERE username = '%%u'
user_query = SELECT uid, gid, home FROM users WHERE username = '%%u'
iterate_query = SELECT username AS user FROM users
`, e.sqlSock, e.sqlUser, e.sqlPassword, sqlColumn(scheme))
}

// pgConf is the dovecot-sql.conf.ext of the PostgreSQL scenarios, with
// Dovecot's default pool (maxconns 5) on both sides.
func pgConf(e env, scheme string) string {
	return fmt.Sprintf(`driver = pgsql
connect = host=%s port=%d dbname=mail user=%s
default_pass_scheme = PLAIN
password_query = SELECT username AS user, %s AS password FROM users WHERE username = '%%u'
user_query = SELECT uid, gid, home FROM users WHERE username = '%%u'
iterate_query = SELECT username AS user FROM users
`, e.pgSockDir, e.pgPort, e.pgUser, sqlColumn(scheme))
}

// sqliteConf is the dovecot-sql.conf.ext of the SQLite scenarios.
func sqliteConf(e env, scheme string) string {
	return fmt.Sprintf(`driver = sqlite
connect = %s
default_pass_scheme = PLAIN
password_query = SELECT username AS user, %s AS password FROM users WHERE username = '%%u'
user_query = SELECT uid, gid, home FROM users WHERE username = '%%u'
iterate_query = SELECT username AS user FROM users
`, e.sqliteFile, sqlColumn(scheme))
}

// ldapConf is a dovecot-ldap.conf.ext for both servers: search with the
// service account and verify locally, or auth_bind straight to the user's
// DN.
func ldapConf(e env, authBind bool) string {
	c := fmt.Sprintf(`uris = %s
ldap_version = 3
dn = cn=authd,ou=services,dc=example,dc=com
dnpass = svcpw
base = ou=people,dc=example,dc=com
scope = onelevel
deref = never
default_pass_scheme = SSHA
pass_filter = (&(objectClass=posixAccount)(mail=%%u))
pass_attrs = mail=user,userPassword=password
user_filter = (&(objectClass=posixAccount)(mail=%%u))
user_attrs = homeDirectory=home,uidNumber=uid,gidNumber=gid
`, e.ldapURI)
	if authBind {
		c += "auth_bind = yes\nauth_bind_userdn = uid=%n,ou=people,dc=example,dc=com\n"
	}
	return c
}

// authConf is the auth part of the configuration, identical for both
// servers. auth_failure_delay 0: only wrong passwords are delayed, and the
// throughput runs send none. The cache, when on, is large enough for every
// user and never expires during a run.
func (s Scenario) authConf(e env) string {
	cache := "auth_cache_size = 0\n"
	if s.Cache {
		cache = "auth_cache_size = 64M\nauth_cache_ttl = 1 hour\nauth_cache_negative_ttl = 1 hour\n"
	}
	var passdb string
	switch s.Backend {
	case "passwd-file":
		passdb = fmt.Sprintf("passdb {\n  driver = passwd-file\n  args = username_format=%%u %s\n}\n",
			filepath.Join(e.dataDir, "users-"+s.Scheme))
	case "sql", "pgsql", "sqlite":
		passdb = fmt.Sprintf("passdb {\n  driver = sql\n  args = %s\n}\n", filepath.Join(e.dataDir, s.Backend+"-"+s.Scheme+".conf.ext"))
	case "ldap":
		name := "ldap.conf.ext"
		if s.AuthBind {
			name = "ldap-bind.conf.ext"
		}
		passdb = fmt.Sprintf("passdb {\n  driver = ldap\n  args = %s\n}\n", filepath.Join(e.dataDir, name))
	}
	return `auth_mechanisms = plain login
auth_failure_delay = 0
auth_verbose = no
auth_debug = no
` + cache + passdb + `userdb {
  driver = static
  args = uid=1000 gid=1000 home=/var/empty/%u
}
`
}

// ldif is the directory: the service account and one posixAccount per
// user, userPassword {SSHA}.
func (d *Data) ldif(svcPasswordSSHA string) []byte {
	var b strings.Builder
	b.WriteString(realserver.ExampleLDIF("{SSHA}" + svcPasswordSSHA))
	for i, a := range d.Accounts {
		uid, _, _ := strings.Cut(a.Name, "@")
		fmt.Fprintf(&b, `dn: uid=%[1]s,ou=people,dc=example,dc=com
objectClass: inetOrgPerson
objectClass: posixAccount
uid: %[1]s
cn: %[1]s
sn: %[1]s
mail: %[2]s
uidNumber: %[3]d
gidNumber: %[3]d
homeDirectory: /var/empty/%[1]s
userPassword: {SSHA}%[4]s

`, uid, a.Name, 10000+i+1, a.SSHA)
	}
	return []byte(b.String())
}

// sqlLoad is the table and its rows, loaded with LOAD DATA LOCAL INFILE.
func (d *Data) sqlRows() []byte {
	var b strings.Builder
	for i, a := range d.Accounts {
		fmt.Fprintf(&b, "%s\t{PLAIN}%s\t{SHA512-CRYPT}%s\t%d\t%d\t/var/empty/%s\n",
			a.Name, a.Password, a.SHA512Crypt, 10000+i+1, 10000+i+1, a.Name)
	}
	return []byte(b.String())
}
