package sql

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/vars"
)

const (
	maxPoolSize   = 1000  // pool_size / maxconns
	defaultScheme = "MD5" // Dovecot's default_pass_scheme for sql
)

// Dovecot 2.3's built-in queries (src/auth/db-sql.c), used when the file
// does not set them.
const (
	DefaultPasswordQuery = "SELECT username, domain, password FROM users WHERE username = '%n' AND domain = '%d'"
	DefaultUserQuery     = "SELECT home, uid, gid FROM users WHERE username = '%n' AND domain = '%d'"
	DefaultUpdateQuery   = "UPDATE users SET password = '%w' WHERE username = '%n' AND domain = '%d'"
	DefaultIterateQuery  = "SELECT username, domain FROM users"
)

// Settings are the keys of a dovecot-sql.conf.ext (Dovecot 2.3's db-sql.c
// setting_defs), plus authd's pool_size. Start from DefaultSettings, then
// use ParseFile, or Set for every key of an inline block.
type Settings struct {
	Driver  string // "mysql", "pgsql" or "sqlite"; cassandra is rejected
	Connect string // "host=… dbname=… user=… password=…" (contains the DB password: never log it)

	PasswordQuery string
	UserQuery     string
	IterateQuery  string
	// UpdateQuery is accepted for compatibility and never run: authd does
	// not change stored passwords.
	UpdateQuery string

	DefaultPassScheme string // scheme of passwords stored without {…}; MD5 by default

	// UserdbWarningDisable is accepted for compatibility; authd has no
	// "user_query changed but unused" warning to silence.
	UserdbWarningDisable bool

	// PoolSize is authd's own key (Dovecot rejects it): the number of
	// connections per host (for SQLite: to the file) that are opened at
	// most. 0 means connect's maxconns= (mysql, pgsql), whose default is
	// Dovecot's 5; SQLite's connect string is only the path, so 5 there.
	PoolSize int

	// Origin maps each key that was set to where ("file:line"), for error
	// messages. May be nil.
	Origin map[string]string

	// Syntax is the language of the queries' templates: Dovecot 2.3's
	// (dovecot-sql.conf.ext, the zero value) or 2.4's (passdb_sql_query …
	// in a 2.4 configuration).
	Syntax vars.Syntax

	warnings []string // parser warnings, logged by NewFromSettings
}

// String renders the settings for humans with the connect string's
// password hidden, so that printing or logging Settings by accident
// (%v, slog) cannot leak it.
func (s Settings) String() string {
	return fmt.Sprintf("driver=%q connect=%q default_pass_scheme=%q password_query=%q user_query=%q iterate_query=%q pool_size=%d",
		s.Driver, redactConnect(s.Connect), s.DefaultPassScheme, s.PasswordQuery, s.UserQuery, s.IterateQuery, s.PoolSize)
}

// LogValue implements slog.LogValuer with the password hidden.
func (s Settings) LogValue() slog.Value { return slog.StringValue(s.String()) }

// redactConnect hides the value of password= in a connect string,
// quoted or not (best effort on malformed input: everything after
// "password=" up to the next blank outside quotes).
func redactConnect(c string) string {
	words, err := splitConnect(c)
	if err != nil {
		if i := strings.Index(c, "password="); i >= 0 {
			return c[:i] + "password=<hidden>"
		}
		return c
	}
	for i, w := range words {
		if strings.HasPrefix(w, "password=") {
			words[i] = "password=<hidden>"
		}
	}
	return strings.Join(words, " ")
}

// DefaultSettings returns Dovecot's defaults: the built-in queries and the
// MD5 default scheme. Driver and Connect have no default.
func DefaultSettings() Settings {
	return Settings{
		PasswordQuery:     DefaultPasswordQuery,
		UserQuery:         DefaultUserQuery,
		UpdateQuery:       DefaultUpdateQuery,
		IterateQuery:      DefaultIterateQuery,
		DefaultPassScheme: defaultScheme,
	}
}

// Set sets one key as Dovecot's parse_setting_from_defs does: unknown
// keys are an error ("Unknown setting"), later values replace earlier
// ones. origin ("file:line", may be empty) is kept for error messages.
// Errors never quote the value: connect holds a password.
func (s *Settings) Set(key, value, origin string) error {
	switch key {
	case "driver":
		s.Driver = value
	case "connect":
		s.Connect = value
	case "password_query":
		s.PasswordQuery = value
	case "user_query":
		s.UserQuery = value
	case "update_query":
		s.UpdateQuery = value
	case "iterate_query":
		s.IterateQuery = value
	case "default_pass_scheme":
		s.DefaultPassScheme = value
	case "userdb_warning_disable":
		b, err := conffile.ParseExtBool(value)
		if err != nil {
			return fmt.Errorf("invalid boolean for %s: %q (want yes or no)", key, value)
		}
		s.UserdbWarningDisable = b
	case "pool_size":
		// Read like Dovecot's own numbers in this file (sscanf "%i").
		n, err := conffile.ParseExtUint(value)
		if err != nil || n < 1 || n > maxPoolSize {
			return fmt.Errorf("invalid pool_size %q: want a number from 1 to %d", value, maxPoolSize)
		}
		s.PoolSize = n
	default:
		return fmt.Errorf("unknown setting: %s", truncateForError(key))
	}
	if origin != "" {
		if s.Origin == nil {
			s.Origin = map[string]string{}
		}
		s.Origin[key] = origin
	}
	return nil
}

// where returns "file:line: " for key, or "" when unknown.
func (s *Settings) where(key string) string {
	if o := s.Origin[key]; o != "" {
		return o + ": "
	}
	return ""
}

// ParseFile reads a dovecot-sql.conf.ext into DefaultSettings. Every
// problem is reported (joined, each wrapping backends.ErrConfig and
// starting with file:line), not only the first.
func ParseFile(path string) (Settings, error) {
	s := DefaultSettings()
	opts := conffile.ExtFile()
	res, err := conffile.ReadFile(path, &opts)
	if err != nil {
		return s, fmt.Errorf("%w: sql: %w", backends.ErrConfig, err)
	}
	return s, s.apply(res)
}

// ParseConf parses the text of a dovecot-sql.conf.ext named name (used in
// messages). !include is an error; it exists for tests and for settings
// that come from elsewhere than a file.
func ParseConf(name string, data []byte) (Settings, error) {
	s := DefaultSettings()
	opts := conffile.ExtFile()
	opts.NoIncludes = true
	return s, s.apply(conffile.Read(name, data, &opts))
}

// apply sets the top-level settings of a file read by conffile, which
// reads it as Dovecot's auth process does (lib-settings); sections mean
// nothing in this file and are skipped, as Dovecot skips them.
func (s *Settings) apply(res *conffile.Result) error {
	problems := append([]*conffile.Error{}, res.Errors...)
	for _, n := range res.Root.Children {
		if n.Section || n.IsInclude() {
			continue
		}
		if err := s.Set(n.Key, n.Value, n.Pos.String()); err != nil {
			problems = append(problems, &conffile.Error{Pos: n.Pos, Msg: err.Error()})
		}
	}
	for _, w := range res.Warnings {
		s.warnings = append(s.warnings, w.Error())
	}
	errs := make([]error, 0, len(problems))
	for _, p := range res.Sort(problems) {
		errs = append(errs, fmt.Errorf("%w: %w", backends.ErrConfig, p))
	}
	return errors.Join(errs...)
}

// truncateForError keeps error messages short when a key is garbage.
func truncateForError(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
