package ldap

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Limits of the conf-file reader: the file is trusted configuration, but
// the parser is still bounded (design.md house rule 2).
const (
	maxConfSize     = 1 << 20 // bytes per file
	maxLogicalLine  = 64 << 10
	maxIncludeDepth = 8
)

// config is dovecot-ldap.conf.ext after reading, before interpretation.
// Field names follow Dovecot 2.3's setting names (db-ldap.c setting_defs).
type config struct {
	path string

	hosts, uris         string
	dn, dnpass          string
	authBind            bool
	authBindUserDN      string
	tls                 bool
	saslBind            bool
	saslMech, saslRealm string
	saslAuthzID         string
	tlsCACertFile       string
	tlsCACertDir        string
	tlsCertFile         string
	tlsKeyFile          string
	tlsCipherSuite      string
	tlsRequireCert      string
	deref, scope        string
	base                string
	baseSet             bool
	ldapVersion         int
	debugLevel          string
	ldaprcPath          string
	userAttrs           string
	userFilter          string
	passAttrs           string
	passFilter          string
	iterateAttrs        string
	iterateFilter       string
	defaultPassScheme   string
	userdbWarnDisable   bool
	blocking            bool

	// authd's own settings. Dovecot 2.3 rejects unknown keys, so these
	// belong only in files that authd alone reads.
	poolSize int           // authd_pool_size: connections per pool
	timeout  time.Duration // authd_timeout: connect and per-operation cap
	failback time.Duration // authd_failback_interval

	// pos records where each key was last set ("file:line"), so that
	// errors found after reading point at the right line.
	pos map[string]string
	// warnings are non-fatal remarks (ignored sections, ignored settings).
	warnings []string
}

// Defaults are Dovecot 2.3.19's (db-ldap.c default_ldap_settings).
func defaultConfig() *config {
	return &config{
		deref:             "never",
		scope:             "subtree",
		ldapVersion:       3,
		debugLevel:        "0",
		userAttrs:         "homeDirectory=home,uidNumber=uid,gidNumber=gid",
		userFilter:        "(&(objectClass=posixAccount)(uid=%u))",
		passAttrs:         "uid=user,userPassword=password",
		passFilter:        "(&(objectClass=posixAccount)(uid=%u))",
		iterateAttrs:      "uid=user",
		iterateFilter:     "(objectClass=posixAccount)",
		defaultPassScheme: "crypt",
		poolSize:          8,
		timeout:           10 * time.Second,
		failback:          30 * time.Second,
		pos:               map[string]string{},
	}
}

type settingKind int

const (
	kStr settingKind = iota
	kBool
	kInt
	kDuration
)

// setting describes one key: its kind and where its value goes.
type setting struct {
	kind settingKind
	str  func(c *config) *string
	bool func(c *config) *bool
	int  func(c *config) *int
	dur  func(c *config) *time.Duration
}

func strSetting(f func(c *config) *string) setting { return setting{kind: kStr, str: f} }
func boolSetting(f func(c *config) *bool) setting  { return setting{kind: kBool, bool: f} }
func intSetting(f func(c *config) *int) setting    { return setting{kind: kInt, int: f} }
func durSetting(f func(c *config) *time.Duration) setting {
	return setting{kind: kDuration, dur: f}
}

// settings lists every key Dovecot 2.3 accepts in dovecot-ldap.conf.ext,
// plus authd_*.
var settings = map[string]setting{
	"hosts":                  strSetting(func(c *config) *string { return &c.hosts }),
	"uris":                   strSetting(func(c *config) *string { return &c.uris }),
	"dn":                     strSetting(func(c *config) *string { return &c.dn }),
	"dnpass":                 strSetting(func(c *config) *string { return &c.dnpass }),
	"auth_bind":              boolSetting(func(c *config) *bool { return &c.authBind }),
	"auth_bind_userdn":       strSetting(func(c *config) *string { return &c.authBindUserDN }),
	"tls":                    boolSetting(func(c *config) *bool { return &c.tls }),
	"sasl_bind":              boolSetting(func(c *config) *bool { return &c.saslBind }),
	"sasl_mech":              strSetting(func(c *config) *string { return &c.saslMech }),
	"sasl_realm":             strSetting(func(c *config) *string { return &c.saslRealm }),
	"sasl_authz_id":          strSetting(func(c *config) *string { return &c.saslAuthzID }),
	"tls_ca_cert_file":       strSetting(func(c *config) *string { return &c.tlsCACertFile }),
	"tls_ca_cert_dir":        strSetting(func(c *config) *string { return &c.tlsCACertDir }),
	"tls_cert_file":          strSetting(func(c *config) *string { return &c.tlsCertFile }),
	"tls_key_file":           strSetting(func(c *config) *string { return &c.tlsKeyFile }),
	"tls_cipher_suite":       strSetting(func(c *config) *string { return &c.tlsCipherSuite }),
	"tls_require_cert":       strSetting(func(c *config) *string { return &c.tlsRequireCert }),
	"deref":                  strSetting(func(c *config) *string { return &c.deref }),
	"scope":                  strSetting(func(c *config) *string { return &c.scope }),
	"base":                   strSetting(func(c *config) *string { c.baseSet = true; return &c.base }),
	"ldap_version":           intSetting(func(c *config) *int { return &c.ldapVersion }),
	"debug_level":            strSetting(func(c *config) *string { return &c.debugLevel }),
	"ldaprc_path":            strSetting(func(c *config) *string { return &c.ldaprcPath }),
	"user_attrs":             strSetting(func(c *config) *string { return &c.userAttrs }),
	"user_filter":            strSetting(func(c *config) *string { return &c.userFilter }),
	"pass_attrs":             strSetting(func(c *config) *string { return &c.passAttrs }),
	"pass_filter":            strSetting(func(c *config) *string { return &c.passFilter }),
	"iterate_attrs":          strSetting(func(c *config) *string { return &c.iterateAttrs }),
	"iterate_filter":         strSetting(func(c *config) *string { return &c.iterateFilter }),
	"default_pass_scheme":    strSetting(func(c *config) *string { return &c.defaultPassScheme }),
	"userdb_warning_disable": boolSetting(func(c *config) *bool { return &c.userdbWarnDisable }),
	"blocking":               boolSetting(func(c *config) *bool { return &c.blocking }),

	"authd_pool_size":         intSetting(func(c *config) *int { return &c.poolSize }),
	"authd_timeout":           durSetting(func(c *config) *time.Duration { return &c.timeout }),
	"authd_failback_interval": durSetting(func(c *config) *time.Duration { return &c.failback }),
}

// confReader reads Dovecot's "nosection" settings files the way
// lib-settings' settings_read does in 2.3: `key = value` lines, '#'
// comments outside quotes, a trailing '\' continuing the line (the pieces
// joined with one space), "…" or '…' quoted values with backslash escapes,
// $ENV:NAME in unquoted values, !include / !include_try (relative to the
// including file, globs allowed), and `name {` … `}` sections, which that
// reader ignores and so does this one (with a warning).
type confReader struct {
	c        *config
	errs     []error
	readFile func(string) ([]byte, error)
	depth    int
}

// parseConfig reads the file at path.
func parseConfig(path string) (*config, error) {
	r := &confReader{c: defaultConfig(), readFile: readLimited}
	r.c.path = path
	data, err := r.readFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	r.parse(path, data)
	return r.c, errors.Join(r.errs...)
}

// parseConfigBytes reads data as if it were the file name; includes are
// refused (for tests and fuzzing).
func parseConfigBytes(name string, data []byte) (*config, error) {
	r := &confReader{c: defaultConfig(), readFile: func(p string) ([]byte, error) {
		return nil, fmt.Errorf("includes are not available here")
	}}
	r.c.path = name
	r.parse(name, data)
	return r.c, errors.Join(r.errs...)
}

func readLimited(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() > maxConfSize {
		return nil, fmt.Errorf("file is larger than %d bytes", maxConfSize)
	}
	buf := make([]byte, st.Size())
	_, err = io.ReadFull(f, buf)
	return buf, err
}

func (r *confReader) errorf(file string, line int, format string, args ...any) {
	r.errs = append(r.errs, fmt.Errorf("%s:%d: %s", file, line, fmt.Sprintf(format, args...)))
}

func isWhite(c byte) bool { return c == ' ' || c == '\t' }

func (r *confReader) parse(file string, data []byte) {
	lines := strings.Split(string(data), "\n")
	var full strings.Builder
	fullStart := 0
	sectionDepth := 0
	for i, line := range lines {
		lineNo := i + 1
		line = strings.TrimRight(line, "\r")
		line = strings.TrimLeft(line, " \t")
		if line == "" || line[0] == '#' {
			continue
		}
		line = stripComment(line)
		line = strings.TrimRight(line, " \t")
		if line == "" {
			continue
		}
		if full.Len() == 0 {
			fullStart = lineNo
		}
		if strings.HasSuffix(line, "\\") {
			// Continues on the next line: Dovecot drops the backslash and
			// the blanks before it and joins the pieces with one space.
			full.WriteString(strings.TrimRight(line[:len(line)-1], " \t"))
			full.WriteByte(' ')
			if full.Len() > maxLogicalLine {
				r.errorf(file, fullStart, "line longer than %d bytes", maxLogicalLine)
				return
			}
			continue
		}
		if full.Len() > 0 {
			full.WriteString(line)
			line = full.String()
			full.Reset()
		} else {
			fullStart = lineNo
		}
		if len(line) > maxLogicalLine {
			r.errorf(file, fullStart, "line longer than %d bytes", maxLogicalLine)
			return
		}
		r.logicalLine(file, fullStart, line, &sectionDepth)
	}
	if full.Len() > 0 {
		// A '\' on the last line continues into nothing; Dovecot then
		// drops the setting silently. Say so instead.
		r.errorf(file, fullStart, "line continued with '\\' at the end of the file")
	}
	if sectionDepth > 0 {
		r.errorf(file, len(lines), "missing '}'")
	}
}

// stripComment cuts a line at the first '#' outside quotes.
func stripComment(line string) string {
	for i := 0; i < len(line); i++ {
		switch c := line[i]; c {
		case '\'', '"':
			for i++; i < len(line) && line[i] != c; i++ {
				if line[i] == '\\' && i+1 < len(line) {
					i++
				}
			}
			if i >= len(line) {
				return line
			}
		case '#':
			return line[:i]
		}
	}
	return line
}

func (r *confReader) logicalLine(file string, lineNo int, line string, depth *int) {
	i := 0
	for i < len(line) && !isWhite(line[i]) && line[i] != '=' {
		i++
	}
	key := line[:i]
	rest := strings.TrimLeft(line[i:], " \t")

	switch {
	case key == "!include" || key == "!include_try":
		r.include(file, lineNo, rest, key == "!include_try")
	case strings.HasPrefix(rest, "="):
		if *depth > 0 {
			return // inside an ignored section
		}
		value := strings.TrimLeft(rest[1:], " \t")
		if l := len(value); l > 0 && (value[0] == '"' && value[l-1] == '"' || value[0] == '\'' && value[l-1] == '\'') {
			if l == 1 {
				value = ""
			} else {
				value = unescape(value[1 : l-1])
			}
		} else {
			value = expandEnv(value)
		}
		r.set(file, lineNo, key, value)
	case key == "}" && rest == "":
		if *depth == 0 {
			r.errorf(file, lineNo, "unexpected '}'")
			return
		}
		*depth--
	case strings.HasSuffix(rest, "{") || key == "{" || strings.HasSuffix(key, "{"):
		if *depth == 0 {
			r.c.warnings = append(r.c.warnings, fmt.Sprintf("%s:%d: section %q ignored (as Dovecot does in this file)", file, lineNo, key))
		}
		*depth++
	default:
		r.errorf(file, lineNo, "expecting '=' after %q", key)
	}
}

// unescape is Dovecot's str_unescape: \n, \r, \t, and \x for any other x.
func unescape(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			b.WriteByte(c)
			continue
		}
		i++
		if i >= len(s) {
			break
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 't':
			b.WriteByte('\t')
		default:
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

// expandEnv replaces $ENV:NAME (at the start of the value or after a
// blank, NAME running to the next space) with the environment variable,
// as lib-settings' expand_environment_vars does for unquoted values.
func expandEnv(v string) string {
	if !strings.Contains(v, "$ENV:") {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); {
		if strings.HasPrefix(v[i:], "$ENV:") && (i == 0 || isWhite(v[i-1])) {
			end := strings.IndexByte(v[i:], ' ')
			if end < 0 {
				end = len(v) - i
			}
			b.WriteString(os.Getenv(v[i+5 : i+end]))
			i += end
			continue
		}
		b.WriteByte(v[i])
		i++
	}
	return b.String()
}

func (r *confReader) include(file string, lineNo int, pattern string, try bool) {
	if r.depth >= maxIncludeDepth {
		r.errorf(file, lineNo, "includes nested deeper than %d", maxIncludeDepth)
		return
	}
	if !filepath.IsAbs(pattern) {
		pattern = filepath.Join(filepath.Dir(file), pattern)
	}
	paths, err := filepath.Glob(pattern)
	if err != nil || len(paths) == 0 {
		paths = []string{pattern}
	}
	for _, p := range paths {
		data, err := r.readFile(p)
		if err != nil {
			if try && errors.Is(err, os.ErrNotExist) {
				continue
			}
			r.errorf(file, lineNo, "include %s: %v", p, err)
			continue
		}
		r.depth++
		r.parse(p, data)
		r.depth--
	}
}

func (r *confReader) set(file string, lineNo int, key, value string) {
	def, ok := settings[key]
	if !ok {
		r.errorf(file, lineNo, "unknown setting %q", key)
		return
	}
	r.c.pos[key] = fmt.Sprintf("%s:%d", file, lineNo)
	switch def.kind {
	case kStr:
		*def.str(r.c) = value
	case kBool:
		switch strings.ToLower(value) {
		case "yes":
			*def.bool(r.c) = true
		case "no":
			*def.bool(r.c) = false
		default:
			r.errorf(file, lineNo, "%s: invalid boolean %q (yes or no)", key, value)
		}
	case kInt:
		// Dovecot reads numbers with sscanf("%i"): 0x and leading-0
		// octal forms are numbers too.
		v, err := strconv.ParseInt(strings.TrimSpace(value), 0, 32)
		if err != nil || v < 0 {
			r.errorf(file, lineNo, "%s: invalid number %q", key, value)
			return
		}
		*def.int(r.c) = int(v)
	case kDuration:
		v, err := parseDuration(value)
		if err != nil {
			r.errorf(file, lineNo, "%s: %v", key, err)
			return
		}
		*def.dur(r.c) = v
	}
}

// where returns "file:line" of key, or the file name when the key kept its
// default.
func (c *config) where(key string) string {
	if p, ok := c.pos[key]; ok {
		return p
	}
	return c.path
}

// parseDuration reads a Dovecot-style interval ("10 secs", "500 ms",
// "1 min"), or a Go duration ("1.5s").
func parseDuration(v string) (time.Duration, error) {
	v = strings.TrimSpace(v)
	i := 0
	for i < len(v) && v[i] >= '0' && v[i] <= '9' {
		i++
	}
	if i == 0 {
		return 0, fmt.Errorf("invalid time interval %q", v)
	}
	num, err := strconv.ParseUint(v[:i], 10, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid time interval %q", v)
	}
	unit := strings.ToLower(strings.TrimSpace(v[i:]))
	var u time.Duration
	switch unit {
	case "ms", "msec", "msecs", "millisecond", "milliseconds":
		u = time.Millisecond
	case "s", "sec", "secs", "second", "seconds":
		u = time.Second
	case "m", "min", "mins", "minute", "minutes":
		u = time.Minute
	case "h", "hour", "hours":
		u = time.Hour
	case "":
		if num == 0 {
			return 0, nil
		}
		return 0, fmt.Errorf("time interval %q is missing units (add e.g. 's' for seconds)", v)
	default:
		if gd, err := time.ParseDuration(v); err == nil && gd >= 0 {
			return gd, nil
		}
		return 0, fmt.Errorf("invalid time interval %q", v)
	}
	return time.Duration(num) * u, nil
}
