package config

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
)

// The settings authd reads, their defaults, and the Dovecot names it accepts
// and ignores.

// setter parses one value into the Config. It returns an error describing
// what is wrong with the value; the caller adds the name and position.
type setter func(c *Config, v string) error

// authdSettings are the top-level settings authd itself uses. Their names
// and value syntax are Dovecot 2.3's, except the ones marked as authd's own.
var authdSettings = map[string]setter{
	"base_dir": func(c *Config, v string) error {
		// Dovecot strips one trailing '/' from base_dir.
		v = strings.TrimSuffix(v, "/")
		if !strings.HasPrefix(v, "/") {
			return fmt.Errorf("must be an absolute path, not %q", v)
		}
		c.BaseDir = v
		return nil
	},
	"auth_mechanisms": func(c *Config, v string) error {
		mechs, err := parseMechanisms(v)
		c.Auth.Mechanisms = mechs
		return err
	},
	"auth_realms": func(c *Config, v string) error { c.Auth.Realms = splitList(v, " \t"); return nil },
	// The login processes' user: its group gets base_dir/login, as
	// Dovecot gives it.
	"default_login_user":         str(func(c *Config) *string { return &c.LoginUser }),
	"auth_default_realm":         str(func(c *Config) *string { return &c.Auth.DefaultRealm }),
	"auth_username_chars":        str(func(c *Config) *string { return &c.Auth.UsernameChars }),
	"auth_username_translation":  str(func(c *Config) *string { return &c.Auth.UsernameTranslation }),
	"auth_username_format":       str(func(c *Config) *string { return &c.Auth.UsernameFormat }),
	"auth_master_user_separator": str(func(c *Config) *string { return &c.Auth.MasterUserSeparator }),
	"auth_anonymous_username":    str(func(c *Config) *string { return &c.Auth.AnonymousUsername }),
	"auth_failure_delay":         dur(func(c *Config) *time.Duration { return &c.Auth.FailureDelay }, false),
	"auth_cache_ttl":             dur(func(c *Config) *time.Duration { return &c.Auth.CacheTTL }, false),
	"auth_cache_negative_ttl":    dur(func(c *Config) *time.Duration { return &c.Auth.CacheNegativeTTL }, false),
	"auth_cache_size": func(c *Config, v string) error {
		n, err := conffile.ParseSize(v)
		c.Auth.CacheSize = n
		return err
	},
	"auth_cache_verify_password_with_worker": boolean(func(c *Config) *bool { return &c.Auth.CacheVerifyPasswordWithWorker }),
	"auth_ssl_require_client_cert":           boolean(func(c *Config) *bool { return &c.Auth.SSLRequireClientCert }),
	"auth_ssl_username_from_cert":            boolean(func(c *Config) *bool { return &c.Auth.SSLUsernameFromCert }),
	"auth_verbose":                           boolean(func(c *Config) *bool { return &c.Auth.Verbose }),
	"auth_debug":                             boolean(func(c *Config) *bool { return &c.Auth.Debug }),
	"auth_debug_passwords":                   boolean(func(c *Config) *bool { return &c.Auth.DebugPasswords }),
	"auth_verbose_passwords": func(c *Config, v string) error {
		// Dovecot: no|plain|sha1, optionally ":<truncate>"; "yes" is
		// an alias for "plain" (and loses any truncation).
		mode, n, hasN := strings.Cut(v, ":")
		if hasN {
			if t, err := conffile.ParseUint32(n); err != nil || t == 0 {
				return fmt.Errorf("invalid truncation number %q", n)
			}
		}
		switch mode {
		case "no", "plain", "sha1":
			c.Auth.VerbosePasswords = v
		case "yes":
			c.Auth.VerbosePasswords = "plain"
		default:
			return fmt.Errorf("invalid value %q (use no, plain or sha1)", v)
		}
		return nil
	},
	"first_valid_uid": uint32Setting(func(c *Config) *uint32 { return &c.Auth.FirstValidUID }),
	"last_valid_uid":  uint32Setting(func(c *Config) *uint32 { return &c.Auth.LastValidUID }),
	"first_valid_gid": uint32Setting(func(c *Config) *uint32 { return &c.Auth.FirstValidGID }),
	"last_valid_gid":  uint32Setting(func(c *Config) *uint32 { return &c.Auth.LastValidGID }),
	"auth_worker_max_count": func(c *Config, v string) error {
		n, err := conffile.ParseUint32(v)
		if err != nil {
			return err
		}
		if n == 0 {
			return fmt.Errorf("must be above zero")
		}
		if n > 1<<20 {
			return fmt.Errorf("%d is too large", n)
		}
		c.Auth.WorkerMaxCount = int(n)
		return nil
	},

	"auth_policy_server_url": func(c *Config, v string) error {
		if v != "" {
			if err := policy.CheckURL(v); err != nil {
				return err
			}
		}
		c.Auth.Policy.URL = v
		return nil
	},
	"auth_policy_server_api_header": func(c *Config, v string) error {
		_, _, err := policy.SplitAPIHeader(v)
		c.Auth.Policy.APIHeader = v
		return err
	},
	"auth_policy_server_timeout_msecs": func(c *Config, v string) error {
		n, err := conffile.ParseUint32(v)
		c.Auth.Policy.Timeout = time.Duration(n) * time.Millisecond
		return err
	},
	"auth_policy_hash_mech":  str(func(c *Config) *string { return &c.Auth.Policy.HashMech }),
	"auth_policy_hash_nonce": str(func(c *Config) *string { return &c.Auth.Policy.Nonce }),
	"auth_policy_hash_truncate": func(c *Config, v string) error {
		n, err := conffile.ParseUint32(v)
		c.Auth.Policy.HashTruncate = int(n)
		return err
	},
	"auth_policy_request_attributes": func(c *Config, v string) error {
		a, err := policy.ParseAttributes(v)
		if err != nil {
			return err
		}
		c.Auth.Policy.Attributes = a
		return nil
	},
	"auth_policy_reject_on_fail":    boolean(func(c *Config) *bool { return &c.Auth.Policy.RejectOnFail }),
	"auth_policy_check_before_auth": boolean(func(c *Config) *bool { return &c.Auth.Policy.CheckBeforeAuth }),
	"auth_policy_check_after_auth":  boolean(func(c *Config) *bool { return &c.Auth.Policy.CheckAfterAuth }),
	"auth_policy_report_after_auth": boolean(func(c *Config) *bool { return &c.Auth.Policy.ReportAfterAuth }),
	"auth_policy_log_only":          boolean(func(c *Config) *bool { return &c.Auth.Policy.LogOnly }),

	// authd's own settings.
	"auth_cache_password_fingerprint": boolean(func(c *Config) *bool { return &c.Auth.CacheVerifyPasswordFingerprint }),
	"log_format": func(c *Config, v string) error {
		if v != "text" && v != "json" {
			return fmt.Errorf("invalid value %q (use text or json)", v)
		}
		c.Log.Format = v
		return nil
	},
	"shutdown_timeout": dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout }, true),
}

// authdDefaults are the defaults of authdSettings, written in config syntax.
// They are applied through the setters, so a default obeys the same rules as
// a configured value, and they answer `$name` references.
var authdDefaults = map[string]string{
	"base_dir":                        "/run/authd",
	"auth_cache_password_fingerprint": "yes",
	"log_format":                      "text",
	"shutdown_timeout":                "10 secs",
}

// authdOwnSettings are not Dovecot settings; Dovecot would reject them.
var authdOwnSettings = map[string]bool{
	"auth_cache_password_fingerprint": true,
	"log_format":                      true,
	"shutdown_timeout":                true,
}

func defaultValue(name string) (string, bool) {
	if v, ok := authdDefaults[name]; ok {
		return v, true
	}
	v, ok := dovecotRootDefaults[name]
	return v, ok
}

func str(f func(*Config) *string) setter {
	return func(c *Config, v string) error { *f(c) = v; return nil }
}

func boolean(f func(*Config) *bool) setter {
	return func(c *Config, v string) error {
		b, err := conffile.ParseBool(v)
		*f(c) = b
		return err
	}
}

func uint32Setting(f func(*Config) *uint32) setter {
	return func(c *Config, v string) error {
		n, err := conffile.ParseUint32(v)
		*f(c) = n
		return err
	}
}

func dur(f func(*Config) *time.Duration, msOK bool) setter {
	return func(c *Config, v string) error {
		d, err := conffile.ParseDuration(v, msOK)
		*f(c) = d
		return err
	}
}

// obsoleteSettings are Dovecot 1.x/2.x names that Dovecot 2.3 still accepts
// with an "obsolete" warning (config/old-set-parser.c). authd accepts and
// ignores them likewise, so an old but working dovecot.conf still loads.
var obsoleteSettings = map[string]bool{
	"ssl_cert_file": true, "ssl_key_file": true, "ssl_ca_file": true, "ssl_disable": true,
	"ssl_parameters_regenerate": true, "ssl_dh_parameters_length": true, "ssl_protocols": true,
	"sieve": true, "sieve_storage": true, "fsync_disable": true, "dbox_rotate_size": true,
	"login_dir": true, "dbox_rotate_min_size": true, "dbox_rotate_days": true,
	"director_consistent_hashing": true, "mail_log_max_lines_per_sec": true,
	"maildir_copy_preserve_filename": true, "ssl_listen": true, "login_chroot": true,
	"login_user": true, "login_executable": true, "login_process_size": true,
	"login_process_per_connection": true, "login_processes_count": true,
	"login_max_processes_count": true, "login_max_connections": true,
	"max_mail_processes": true, "mail_executable": true, "mail_process_size": true,
	"mail_drop_priv_before_exec": true, "auth_executable": true, "auth_process_size": true,
	"auth_user": true, "auth_chroot": true, "auth_count": true,
}

func isObsolete(name string) bool {
	return obsoleteSettings[name] || strings.HasPrefix(name, "mail_cache_compress_")
}

// Section types Dovecot 2.3 has at the top level, other than the filters
// and the ones authd parses.
var ignoredSections = map[string]bool{
	"namespace": true, "plugin": true, "dict": true, "metric": true, "event_exporter": true,
}

// freeFormSections take any key (Dovecot's "strlist" sections).
var freeFormSections = map[string]bool{"plugin": true, "dict": true}

var filterSections = map[string]bool{"protocol": true, "local": true, "remote": true, "local_name": true}

var rootCandidates = sync.OnceValue(func() []string {
	out := make([]string, 0, len(dovecotRootDefaults)+len(authdSettings))
	for k := range dovecotRootDefaults {
		out = append(out, k)
	}
	for k := range authdOwnSettings {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
})

func rootSectionCandidates() []string {
	return []string{"dict", "event_exporter", "grpc", "hash_budget", "local", "local_name", "metric", "metrics", "namespace", "passdb", "penalty", "plugin", "protocol", "redis", "remote", "service", "userdb"}
}

// suggest returns the candidate closest to name, if it is close enough to
// be the intended one.
func suggest(name string, candidates []string) string {
	best, bestDist := "", 1<<30
	for _, c := range candidates {
		d := editDistance(name, c)
		if d < bestDist {
			best, bestDist = c, d
		}
	}
	limit := 2
	if len(name) > 12 {
		limit = 3
	}
	if bestDist <= limit && bestDist < len(name) {
		return best
	}
	// A known name with something appended (auth_mechanisms_typo).
	for _, c := range candidates {
		if len(c) >= 6 && strings.HasPrefix(name, c) {
			return c
		}
	}
	return ""
}

func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return 1 << 30
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// fsMode turns a checked (<= 0777) Dovecot mode into permission bits.
func fsMode(m uint32) os.FileMode { return os.FileMode(m) & os.ModePerm }
