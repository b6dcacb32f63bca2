package sql

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/authd-project/authd/backends"
)

// Limits on dovecot-sql.conf.ext that Dovecot does not have (house rule 2:
// the parser is the attack surface). No real file comes near them.
const (
	maxConfFile   = 4 << 20   // bytes per file
	maxConfLine   = 64 << 10  // bytes per physical line
	maxConfValue  = 256 << 10 // bytes per logical (continued) line
	maxIncludes   = 16        // nesting depth of !include
	maxPoolSize   = 1000      // pool_size / maxconns
	defaultScheme = "MD5"     // Dovecot's default_pass_scheme for sql
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
	Driver  string // "mysql"; pgsql, sqlite and cassandra are rejected
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
	// connections per host that are opened at most and kept open. 0 means
	// connect's maxconns=, whose default is Dovecot's 5.
	PoolSize int

	// Origin maps each key that was set to where ("file:line"), for error
	// messages. May be nil.
	Origin map[string]string

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
		// Dovecot's get_bool: yes/no, any case.
		switch strings.ToLower(value) {
		case "yes":
			s.UserdbWarningDisable = true
		case "no":
			s.UserdbWarningDisable = false
		default:
			return fmt.Errorf("invalid boolean for %s: %q (want yes or no)", key, value)
		}
	case "pool_size":
		n, err := strconv.Atoi(value)
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
	p := confParser{s: &s, open: readConfFile}
	data, err := readConfFile(path)
	if err != nil {
		return s, fmt.Errorf("%w: sql: %w", backends.ErrConfig, err)
	}
	p.parse(path, data, 0, []string{path})
	return s, p.err()
}

// ParseConf parses the text of a dovecot-sql.conf.ext named name (used in
// messages). !include is not followed; it exists for tests and for
// settings that come from elsewhere than a file.
func ParseConf(name string, data []byte) (Settings, error) {
	s := DefaultSettings()
	p := confParser{s: &s}
	p.parse(name, data, 0, []string{name})
	return s, p.err()
}

func readConfFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if len(data) > maxConfFile {
		return nil, fmt.Errorf("%s: larger than %d bytes", path, maxConfFile)
	}
	return data, nil
}

// confParser follows Dovecot 2.3's settings_read_i (src/lib-settings/
// settings.c) as used by settings_read_nosection for this file.
type confParser struct {
	s    *Settings
	open func(string) ([]byte, error) // nil: !include is an error
	errs []error
}

func (p *confParser) errorf(file string, line int, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%w: %s:%d: %s", backends.ErrConfig, file, line, fmt.Sprintf(format, args...)))
}

func (p *confParser) warnf(file string, line int, format string, args ...any) {
	p.s.warnings = append(p.s.warnings, fmt.Sprintf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
}

func (p *confParser) err() error {
	return errors.Join(p.errs...)
}

func isWhite(c byte) bool { return c == ' ' || c == '\t' }

// parse reads one file. stack holds the files being read, to refuse
// recursive includes as Dovecot does.
func (p *confParser) parse(file string, data []byte, depth int, stack []string) {
	var full strings.Builder // a value continued with '\' over several lines
	fullStart := 0
	sections := 0 // nesting of "name {" blocks, whose contents are skipped
	lineNo := 0
	for len(data) > 0 {
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		lineNo++
		if len(raw) > maxConfLine {
			p.errorf(file, lineNo, "line longer than %d bytes", maxConfLine)
			full.Reset()
			continue
		}
		if bytes.IndexByte(raw, 0) >= 0 {
			// Dovecot reads C strings: the line would end at the NUL.
			p.errorf(file, lineNo, "NUL byte in line")
			full.Reset()
			continue
		}
		line := strings.TrimSuffix(string(raw), "\r")
		line = strings.TrimLeft(line, " \t")
		// Comment and blank lines are skipped even in the middle of a
		// continued value, as in Dovecot.
		if line == "" || line[0] == '#' {
			continue
		}
		line = p.stripComment(file, lineNo, line)
		line = strings.TrimRight(line, " \t")
		if strings.HasSuffix(line, `\`) {
			// "continues in next line": drop the backslash and the
			// blanks before it, join with one space.
			if full.Len() == 0 {
				fullStart = lineNo
			}
			full.WriteString(strings.TrimRight(line[:len(line)-1], " \t"))
			full.WriteByte(' ')
			if full.Len() > maxConfValue {
				p.errorf(file, fullStart, "continued line longer than %d bytes", maxConfValue)
				full.Reset()
			}
			continue
		}
		at := lineNo
		if full.Len() > 0 {
			full.WriteString(line)
			line = full.String()
			full.Reset()
			// Dovecot reports the last line of a continued value; the
			// line with the key is the one to point an operator at.
			at = fullStart
		}
		sections = p.line(file, at, line, sections, depth, stack)
	}
	if full.Len() > 0 {
		// Dovecot silently drops a value whose last line ends in '\';
		// keep that (the key keeps its default) but say so.
		p.warnf(file, fullStart, "file ends inside a value continued with '\\'; the value is ignored")
	}
	if sections > 0 {
		// Dovecot does not complain either; only the skipped section's
		// keys are affected.
		p.warnf(file, lineNo, "section not closed with '}' at end of file")
	}
}

// stripComment cuts a '#' comment that is outside '…' or "…" quotes
// (backslash escapes inside), as Dovecot's "pretty kludgy" loop does.
func (p *confParser) stripComment(file string, lineNo int, line string) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			j := i + 1
			for j < len(line) && line[j] != c {
				if line[j] == '\\' && j+1 < len(line) {
					j++
				}
				j++
			}
			if j >= len(line) {
				return line // unterminated quote: keep the rest as is
			}
			i = j
		case '#':
			if !isWhite(line[i-1]) {
				p.warnf(file, lineNo, "ambiguous '#' character in line, treating it as comment; add a space before it")
			}
			return line[:i]
		}
	}
	return line
}

// line handles one logical line and returns the new section depth.
func (p *confParser) line(file string, lineNo int, line string, sections, depth int, stack []string) int {
	i := 0
	for i < len(line) && !isWhite(line[i]) && line[i] != '=' {
		i++
	}
	key := line[:i]
	rest := strings.TrimLeft(line[i:], " \t")
	switch {
	case key == "!include" || key == "!include_try":
		if sections == 0 {
			p.include(file, lineNo, rest, key == "!include_try", depth, stack)
		}
		return sections
	case strings.HasPrefix(rest, "="):
		if sections > 0 {
			return sections // inside a skipped section
		}
		value := strings.TrimLeft(rest[1:], " \t")
		if n := len(value); n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n-1] == value[0] {
			value = unescapeBackslash(value[1 : n-1])
		} else {
			value = expandEnv(value)
		}
		if err := p.s.Set(key, value, fmt.Sprintf("%s:%d", file, lineNo)); err != nil {
			p.errorf(file, lineNo, "%v", err)
		}
		return sections
	case key == "}" && rest == "":
		if sections == 0 {
			p.errorf(file, lineNo, "unexpected '}'")
			return 0
		}
		return sections - 1
	}
	// "type [name] {" opens a section; this file has none that matter,
	// so Dovecot (no section callback) skips its contents.
	name := rest
	if !strings.HasPrefix(rest, "{") {
		j := 0
		for j < len(rest) && !isWhite(rest[j]) {
			j++
		}
		name = strings.TrimLeft(rest[j:], " \t")
	}
	if !strings.HasPrefix(name, "{") {
		p.errorf(file, lineNo, "expecting '=' after %q", truncateForError(key))
		return sections
	}
	return sections + 1
}

// include follows !include / !include_try with a glob, relative to the
// including file's directory.
func (p *confParser) include(file string, lineNo int, pattern string, try bool, depth int, stack []string) {
	if p.open == nil {
		p.errorf(file, lineNo, "!include is not supported here")
		return
	}
	if depth >= maxIncludes {
		p.errorf(file, lineNo, "!include nested more than %d deep", maxIncludes)
		return
	}
	if !strings.HasPrefix(pattern, "/") {
		if d := filepath.Dir(file); d != "." || strings.Contains(file, "/") {
			pattern = d + "/" + pattern
		}
	}
	matches, err := filepath.Glob(pattern)
	if err != nil {
		p.errorf(file, lineNo, "!include %s: %v", pattern, err)
		return
	}
	if len(matches) == 0 {
		if !try {
			p.errorf(file, lineNo, "!include %s: no matches", pattern)
		}
		return
	}
	sort.Strings(matches)
	for _, m := range matches {
		for _, s := range stack {
			if s == m {
				p.errorf(file, lineNo, "recursive include file: %s", m)
				return
			}
		}
		data, err := p.open(m)
		if err != nil {
			if !try {
				p.errorf(file, lineNo, "couldn't open include file: %v", err)
			}
			continue
		}
		p.parse(m, data, depth+1, append(stack[:len(stack):len(stack)], m))
	}
}

// unescapeBackslash is Dovecot's str_unescape: a backslash takes the next
// byte literally; a trailing lone backslash is dropped.
func unescapeBackslash(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' {
			i++
			if i >= len(s) {
				break
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// expandEnv replaces $ENV:NAME (at the start of the value or after a
// blank, NAME running to the next space) with the environment variable,
// as Dovecot's expand_environment_vars does for unquoted values.
func expandEnv(v string) string {
	if !strings.Contains(v, "$ENV:") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		if strings.HasPrefix(v[i:], "$ENV:") && (i == 0 || isWhite(v[i-1])) {
			end := strings.IndexByte(v[i:], ' ')
			if end < 0 {
				end = len(v)
			} else {
				end += i
			}
			b.WriteString(os.Getenv(v[i+5 : end]))
			i = end
			continue
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String()
}

// truncateForError keeps error messages short when a key is garbage.
func truncateForError(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
