package config

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/limiter"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// Dump writes the effective configuration in Dovecot syntax, defaults
// included, for `authd check`. The output loads back into an equal Config.
// Secrets are not printed: a setting whose name contains "pass" is shown as
// `# hidden`, and inside args, default_fields and override_fields every
// `name=value` word whose name contains "pass" (password=, dnpass=,
// userdb_password=) has its value replaced by <hidden>. Settings in the
// files that args points to (dovecot-sql.conf.ext …) are not read here.
func (c *Config) Dump(w io.Writer) { c.DumpWith(w, DumpOptions{}) }

// DumpOptions change what DumpWith writes; the zero value is Dump's.
type DumpOptions struct {
	// Secrets prints secrets as they are (authd convert writes a file to
	// be used, not looked at).
	Secrets bool
	// Minimal (2.4 syntax only) leaves out settings at Dovecot 2.4's
	// defaults, sections left empty, authd's own sections at their
	// defaults and the list of ignored settings.
	Minimal bool
	// Notes are comment lines written before a setting, by its path:
	// "auth_username_format", "passdb sql/default_password_scheme",
	// "passdb ldap/fields/home" (the enclosing sections as written, then
	// the key).
	Notes map[string][]string
	// Header lines are comments written after dovecot_config_version.
	Header []string
	// DovecotOnly (with Minimal) leaves out authd's own settings and
	// sections (grpc, metrics, penalty, hash_budget, log_format …), which
	// Dovecot does not know: the file is for Dovecot 2.4's auth.
	DovecotOnly bool
}

// DumpWith is Dump with options.
func (c *Config) DumpWith(w io.Writer, o DumpOptions) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	d := dumper{w: bw, o: o}
	if c.Syntax == vars.Syntax24 {
		d.dump24(c)
		return
	}
	a := &c.Auth

	d.line("# authd effective configuration")
	d.kv("base_dir", c.BaseDir)
	d.kv("auth_mechanisms", strings.Join(a.Mechanisms, " "))
	d.kv("auth_realms", strings.Join(a.Realms, " "))
	d.kv("auth_default_realm", a.DefaultRealm)
	d.kv("auth_username_chars", a.UsernameChars)
	d.kv("auth_username_translation", a.UsernameTranslation)
	d.kv("auth_username_format", a.UsernameFormat)
	d.kv("auth_master_user_separator", a.MasterUserSeparator)
	d.kv("auth_anonymous_username", a.AnonymousUsername)
	d.kv("auth_failure_delay", conffile.FormatDuration(a.FailureDelay))
	d.kv("auth_cache_size", conffile.FormatSize(a.CacheSize))
	d.kv("auth_cache_ttl", conffile.FormatDuration(a.CacheTTL))
	d.kv("auth_cache_negative_ttl", conffile.FormatDuration(a.CacheNegativeTTL))
	d.kv("auth_cache_verify_password_with_worker", yesNo(a.CacheVerifyPasswordWithWorker))
	d.kv("auth_cache_password_fingerprint", yesNo(a.CacheVerifyPasswordFingerprint))
	d.kv("auth_ssl_require_client_cert", yesNo(a.SSLRequireClientCert))
	d.kv("auth_ssl_username_from_cert", yesNo(a.SSLUsernameFromCert))
	d.kv("auth_verbose", yesNo(a.Verbose))
	d.kv("auth_debug", yesNo(a.Debug))
	d.kv("auth_debug_passwords", yesNo(a.DebugPasswords))
	d.kv("auth_verbose_passwords", a.VerbosePasswords)
	d.kv("auth_worker_max_count", fmt.Sprint(a.WorkerMaxCount))
	d.kv("first_valid_uid", fmt.Sprint(a.FirstValidUID))
	d.kv("last_valid_uid", fmt.Sprint(a.LastValidUID))
	d.kv("first_valid_gid", fmt.Sprint(a.FirstValidGID))
	d.kv("last_valid_gid", fmt.Sprint(a.LastValidGID))
	if len(a.ProxySelf) > 0 {
		d.kv("auth_proxy_self", strings.Join(a.ProxySelf, " "))
	}
	d.policy(a.Policy)
	d.kv("log_format", c.Log.Format)
	d.kv("shutdown_timeout", conffile.FormatDuration(c.ShutdownTimeout))

	for _, db := range c.Passdbs {
		d.db("passdb", db, true)
	}
	for _, db := range c.Userdbs {
		d.db("userdb", db, false)
	}
	d.authdSections(c)
}

// authdSections writes what both languages share: service auth's sockets
// and authd's own sections.
func (d *dumper) authdSections(c *Config) {
	if d.o.Minimal {
		d.minimalAuthdSections(c)
		return
	}
	d.listeners(c.Listeners, c.InetListeners)
	d.grpc(c.GRPC)

	d.open("metrics", "")
	d.kv("listen", c.Metrics.Listen)
	d.close()

	d.penalty(c.Penalty)
	d.hashBudget(c.HashBudget)
	d.redis(c.Redis)

	if len(c.Ignored) > 0 {
		d.line("# ignored (settings of other Dovecot services): " + strings.Join(c.Ignored, ", "))
	}
}

// listeners writes service auth { } with its sockets.
func (d *dumper) listeners(ls []Listener, inet []InetListener) {
	d.open("service", "auth")
	for _, l := range ls {
		if !d.o.Minimal {
			d.line("# role " + l.Role.String() + ", socket " + l.Path)
		}
		d.open("unix_listener", l.Name)
		d.kv("mode", fmt.Sprintf("%#04o", uint32(l.Mode.Perm())))
		d.kv("user", l.User)
		d.kv("group", l.Group)
		if l.Trusted {
			d.kv("trusted", "yes")
		}
		if l.Type != "" {
			d.kv("type", l.Type)
		}
		d.close()
	}
	d.inetListeners(inet)
	d.close()
}

// minimalAuthdSections writes service auth's sockets and those of
// authd's own sections that differ from their defaults.
func (d *dumper) minimalAuthdSections(c *Config) {
	defs := &dumper{o: DumpOptions{Minimal: true}, collect: map[string]string{}}
	defs.grpc(DefaultGRPC())
	defs.penalty(defaultPenalty())
	defs.hashBudget(schemes.DefaultLimits())
	defs.redis(Redis{Addresses: []string{""}, KeyPrefix: DefaultRedisKeyPrefix, Timeout: DefaultRedisTimeout,
		DegradedCacheTTL: DefaultRedisDegradedCacheTTL})
	d.defs = defs.collect
	defaults := map[string]*Listener{}
	for _, l := range defaultListeners() {
		defaults[l.Name] = l
	}
	var changed []Listener
	for _, l := range c.Listeners {
		if def := defaults[l.Name]; def == nil || l.Role != def.Role || l.Mode != def.Mode || l.User != def.User ||
			l.Group != def.Group || l.Trusted != def.Trusted || l.Type != def.Type {
			changed = append(changed, l)
		}
	}
	d.listeners(changed, c.InetListeners)
	if d.o.DovecotOnly {
		return
	}
	d.grpc(c.GRPC)
	if c.Metrics.Listen != "" {
		d.open("metrics", "")
		d.kv("listen", c.Metrics.Listen)
		d.close()
	}
	d.penalty(c.Penalty)
	d.hashBudget(c.HashBudget)
	d.redis(c.Redis)
}

type dumper struct {
	w     *bufio.Writer
	depth int
	o     DumpOptions
	// path holds the open sections ("passdb sql", "fields"), for Notes
	// and the defaults of Minimal.
	path   []string
	driver string // the driver of the passdb/userdb block being written
	// collect, when set, receives the settings instead of the output (by
	// path, as for Notes): the defaults of authd's sections for Minimal.
	collect map[string]string
	// defs are those defaults: with Minimal, a setting at its default is
	// not written.
	defs map[string]string
	// pending are section openings not written yet: with Minimal a
	// section is written only once something is written in it.
	pending []string
}

func (d *dumper) line(s string) {
	d.flush()
	d.write(d.depth, s)
}

func (d *dumper) write(depth int, s string) {
	d.w.WriteString(strings.Repeat("  ", depth))
	d.w.WriteString(s)
	d.w.WriteByte('\n')
}

// flush writes the pending section openings.
func (d *dumper) flush() {
	base := d.depth - len(d.pending)
	for i, p := range d.pending {
		d.write(base+i, p)
	}
	d.pending = d.pending[:0]
}

func (d *dumper) open(typ, label string) {
	name := typ
	if label != "" {
		name += " " + quoteLabel(label)
	}
	if d.o.Minimal {
		d.pending = append(d.pending, name+" {")
	} else {
		d.line(name + " {")
	}
	d.path = append(d.path, strings.TrimSpace(typ+" "+label))
	d.depth++
}

func (d *dumper) close() {
	d.depth--
	d.path = d.path[:len(d.path)-1]
	if n := len(d.pending); n > 0 {
		d.pending = d.pending[:n-1] // nothing was written in it
		return
	}
	d.line("}")
}

// notes writes the comments DumpOptions.Notes holds for key here.
func (d *dumper) notes(key string) {
	for _, n := range d.o.Notes[strings.Join(append(slices.Clone(d.path), key), "/")] {
		d.line("# " + n)
	}
}

// notSecret are settings whose names contain "pass" but whose values are
// not secrets (booleans are never secrets either).
var notSecret = map[string]bool{"auth_verbose_passwords": true}

func (d *dumper) kv(key, value string) {
	p := strings.Join(append(slices.Clone(d.path), key), "/")
	if d.collect != nil {
		d.collect[p] = value
		return
	}
	if def, ok := d.defs[p]; ok && def == value || d.o.Minimal && value == "" {
		return
	}
	switch {
	case d.o.Secrets:
		d.line(key + " = " + quoteValue(value))
	case strings.Contains(strings.ToLower(key), "pass") && !notSecret[key] &&
		value != "" && value != "yes" && value != "no":
		d.line(key + " = # hidden")
	case strings.ContainsAny(value, "\r\n"):
		d.line(key + " = # multi-line value not shown")
	default:
		d.line(key + " = " + quoteValue(value))
	}
}

func (d *dumper) db(kind string, db DB, passdb bool) {
	d.open(kind, db.Name)
	d.kv("driver", db.Driver)
	d.kv("args", hideWords(db.Args))
	d.kv("default_fields", hideWords(db.DefaultFields))
	d.kv("override_fields", hideWords(db.OverrideFields))
	for _, x := range db.DriverSettings {
		d.kv(x.Key, hideWords(x.Value))
	}
	d.kv("skip", db.Skip.String())
	if !db.Pass {
		// pass=yes already means result_success=continue; writing both
		// would not load back.
		d.kv("result_success", db.ResultSuccess.String())
	}
	d.kv("result_failure", db.ResultFailure.String())
	d.kv("result_internalfail", db.ResultInternalfail.String())
	d.kv("auth_verbose", db.AuthVerbose.String())
	if passdb {
		d.kv("mechanisms", strings.Join(db.Mechanisms, " "))
		d.kv("username_filter", strings.Join(db.UsernameFilter, " "))
		d.kv("deny", yesNo(db.Deny))
		d.kv("master", yesNo(db.Master))
		d.kv("pass", yesNo(db.Pass))
	}
	d.close()
}

// hideWords replaces the values of name=value words whose name contains
// "pass".
func hideWords(v string) string {
	words := strings.Fields(v)
	changed := false
	for i, w := range words {
		name, _, ok := strings.Cut(w, "=")
		if ok && strings.Contains(strings.ToLower(name), "pass") {
			words[i] = name + "=<hidden>"
			changed = true
		}
	}
	if !changed {
		return v
	}
	return strings.Join(words, " ")
}

// quoteValue quotes a value when writing it bare would read back
// differently: surrounding blanks, a comment character, a quote, a
// backslash, a `$` (variable) or a leading `<` (file).
func quoteValue(v string) string {
	if v == "" || (!strings.ContainsAny(v, "#$\"'\\") && !strings.HasPrefix(v, "<") &&
		strings.TrimSpace(v) == v) {
		return v
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(v) + `"`
}

func quoteLabel(l string) string {
	if !strings.ContainsAny(l, " \t\"{}#") {
		return l
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(l) + `"`
}

// redactURL hides a password in a URL.
func redactURL(v string) string {
	if u, err := url.Parse(v); err == nil {
		return u.Redacted()
	}
	return v
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func (d *dumper) penalty(p Penalty) {
	d.open("penalty", "")
	d.kv("enabled", yesNo(p.Enabled))
	budget := func(name string, b limiter.Budget) {
		d.kv(name+"_failures", strconv.Itoa(b.Failures))
		d.kv(name+"_window", conffile.FormatDuration(b.Window))
	}
	budget("ip", p.IP)
	budget("prefix", p.Prefix)
	budget("account", p.Account)
	budget("known_good", p.KnownGood)
	d.kv("known_good_for", conffile.FormatDuration(p.KnownGoodFor))
	d.kv("max_keys", strconv.Itoa(p.MaxKeys))
	d.kv("client_max_delay", conffile.FormatDuration(p.ClientMaxDelay))
	d.kv("max_delay", conffile.FormatDuration(p.MaxDelay))
	d.close()
}

// hashBudget writes the limits.
// redis writes redis { } when it is on. Its file settings name files,
// not secrets: they are written as they are.
func (d *dumper) redis(r Redis) {
	if !r.Enabled() {
		return
	}
	d.open("redis", "")
	d.kv("address", strings.Join(r.Addresses, " "))
	for _, kv := range [][2]string{{"sentinel_master", r.SentinelMaster}, {"username", r.Username},
		{"password_file", r.PasswordFile}, {"sentinel_password_file", r.SentinelPasswordFile}} {
		if kv[1] != "" {
			d.fileKV(kv[0], kv[1])
		}
	}
	d.kv("tls", yesNo(r.TLS))
	for _, kv := range [][2]string{{"tls_ca_file", r.TLSCAFile}, {"tls_cert_file", r.TLSCertFile}, {"tls_key_file", r.TLSKeyFile}} {
		if kv[1] != "" {
			d.kv(kv[0], kv[1])
		}
	}
	d.kv("key_prefix", r.KeyPrefix)
	d.kv("timeout", conffile.FormatDuration(r.Timeout))
	if r.SecretFile != "" {
		d.kv("secret_file", r.SecretFile)
	}
	d.kv("degraded_cache_ttl", conffile.FormatDuration(r.DegradedCacheTTL))
	d.close()
}

// fileKV is kv for a setting whose name says "pass" but whose value is a
// file's path or a name: shown, unlike a password.
func (d *dumper) fileKV(key, value string) {
	if d.collect != nil || d.o.Secrets {
		d.kv(key, value)
		return
	}
	p := strings.Join(append(slices.Clone(d.path), key), "/")
	if def, ok := d.defs[p]; ok && def == value {
		return
	}
	d.line(key + " = " + quoteValue(value))
}

func (d *dumper) hashBudget(l schemes.Limits) {
	fields := hashBudgetFields(&l)
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	d.open("hash_budget", "")
	for _, k := range keys {
		v := *fields[k]
		if hashBudgetSizes[k] {
			d.kv(k, conffile.FormatSize(v*1024))
			continue
		}
		d.kv(k, strconv.FormatInt(v, 10))
	}
	d.close()
}

// policy writes the auth_policy_* settings. The nonce and the API header
// are secrets, and so is a password in the URL: they are shown as
// <hidden> (a value that loads back).
func (d *dumper) policy(p policy.Settings) {
	hidden := func(v string) string {
		if v == "" {
			return ""
		}
		return "<hidden>"
	}
	d.kv("auth_policy_server_url", redactURL(p.URL))
	d.kv("auth_policy_server_api_header", hidden(p.APIHeader))
	d.kv("auth_policy_server_timeout_msecs", strconv.FormatInt(p.Timeout.Milliseconds(), 10))
	d.kv("auth_policy_hash_mech", p.HashMech)
	d.kv("auth_policy_hash_nonce", hidden(p.Nonce))
	d.kv("auth_policy_hash_truncate", strconv.Itoa(p.HashTruncate))
	attrs := ""
	if p.Attributes != nil {
		attrs = p.Attributes.String()
	}
	d.kv("auth_policy_request_attributes", attrs)
	d.kv("auth_policy_reject_on_fail", yesNo(p.RejectOnFail))
	d.kv("auth_policy_check_before_auth", yesNo(p.CheckBeforeAuth))
	d.kv("auth_policy_check_after_auth", yesNo(p.CheckAfterAuth))
	d.kv("auth_policy_report_after_auth", yesNo(p.ReportAfterAuth))
	d.kv("auth_policy_log_only", yesNo(p.LogOnly))
}

func allOptional(as []InetAddr) bool {
	for _, a := range as {
		if !a.Optional {
			return false
		}
	}
	return true
}

// inetListeners writes the inet_listener blocks with their effective
// addresses and allowlist.
func (d *dumper) inetListeners(ls []InetListener) {
	for _, l := range ls {
		d.line("# client protocol over TCP, in plaintext")
		d.open("inet_listener", l.Name)
		var addrs, nets []string
		for _, a := range l.Listen {
			// Bound as host:port; the setting takes the host alone.
			host, _, err := net.SplitHostPort(a.Addr)
			if err != nil {
				host = a.Addr
			}
			addrs = append(addrs, host)
		}
		for _, p := range l.AllowNets {
			nets = append(nets, p.String())
		}
		if !allOptional(l.Listen) { // else Dovecot's default, *, ::
			d.kv("address", strings.Join(addrs, ", "))
		}
		d.kv("port", fmt.Sprint(l.Port))
		if !d.o.DovecotOnly { // authd's own setting: Dovecot has none
			d.kv("allow_nets", strings.Join(nets, " "))
		}
		d.close()
	}
}
