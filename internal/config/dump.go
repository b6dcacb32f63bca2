package config

import (
	"bufio"
	"fmt"
	"io"
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
func (c *Config) Dump(w io.Writer) {
	bw := bufio.NewWriter(w)
	defer bw.Flush()
	d := dumper{w: bw}
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
	d.open("service", "auth")
	for _, l := range c.Listeners {
		d.line("# role " + l.Role.String() + ", socket " + l.Path)
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
	d.close()

	d.grpc(c.GRPC)

	d.open("metrics", "")
	d.kv("listen", c.Metrics.Listen)
	d.close()

	d.penalty(c.Penalty)
	d.hashBudget(c.HashBudget)

	if len(c.Ignored) > 0 {
		d.line("# ignored (settings of other Dovecot services): " + strings.Join(c.Ignored, ", "))
	}
}

type dumper struct {
	w     *bufio.Writer
	depth int
}

func (d *dumper) line(s string) {
	d.w.WriteString(strings.Repeat("  ", d.depth))
	d.w.WriteString(s)
	d.w.WriteByte('\n')
}

func (d *dumper) open(typ, label string) {
	if label != "" {
		d.line(typ + " " + quoteLabel(label) + " {")
	} else {
		d.line(typ + " {")
	}
	d.depth++
}

func (d *dumper) close() {
	d.depth--
	d.line("}")
}

// notSecret are settings whose names contain "pass" but whose values are
// not secrets (booleans are never secrets either).
var notSecret = map[string]bool{"auth_verbose_passwords": true}

func (d *dumper) kv(key, value string) {
	switch {
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
