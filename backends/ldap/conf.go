package ldap

import (
	"errors"
	"fmt"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/vars"
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

	// Dovecot 2.4 (New24): the templates' language, and the fields { }
	// lists that replace 2.3's pass_attrs/user_attrs/iterate_attrs.
	syntax                           vars.Syntax
	passFields, userFields, iterFlds [][2]string
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

// parseConfig reads the file at path. conffile reads it as Dovecot's auth
// process does (lib-settings' settings_read_nosection): '#' comments, '\'
// continuation, quotes, $ENV:NAME in unquoted values, !include and
// !include_try, and `name {` … `}` sections, whose contents Dovecot skips
// and so does this package (with a warning). A nil config means the file
// could not be read at all.
func parseConfig(path string) (*config, error) {
	opts := conffile.ExtFile()
	res, err := conffile.ReadFile(path, &opts)
	if err != nil {
		return nil, err
	}
	return fromTree(path, res)
}

// parseConfigBytes reads data as if it were the file name; includes are
// refused (for tests and fuzzing).
func parseConfigBytes(name string, data []byte) (*config, error) {
	opts := conffile.ExtFile()
	opts.NoIncludes = true
	return fromTree(name, conffile.Read(name, data, &opts))
}

// fromTree sets the top-level settings of a read file over the defaults
// and returns every problem, the reader's and the settings', in file
// order.
func fromTree(path string, res *conffile.Result) (*config, error) {
	c := defaultConfig()
	c.path = path
	problems := append([]*conffile.Error{}, res.Errors...)
	for _, n := range res.Root.Children {
		switch {
		case n.IsInclude():
		case n.Section:
			c.warnings = append(c.warnings, fmt.Sprintf("%s: section %q ignored (as Dovecot does in this file)", n.Pos, n.Key))
		default:
			if msg := c.set(n.Key, n.Value); msg != "" {
				problems = append(problems, &conffile.Error{Pos: n.Pos, Msg: msg})
			} else {
				c.pos[n.Key] = n.Pos.String()
			}
		}
	}
	for _, w := range res.Warnings {
		c.warnings = append(c.warnings, w.Error())
	}
	errs := make([]error, 0, len(problems))
	for _, p := range res.Sort(problems) {
		errs = append(errs, p)
	}
	return c, errors.Join(errs...)
}

// set sets one key as Dovecot's parse_setting_from_defs does (unknown
// keys are an error, later values replace earlier ones) and returns what
// is wrong, or "".
func (c *config) set(key, value string) string {
	def, ok := settings[key]
	if !ok {
		return fmt.Sprintf("unknown setting %q", key)
	}
	switch def.kind {
	case kStr:
		*def.str(c) = value
	case kBool:
		b, err := conffile.ParseExtBool(value)
		if err != nil {
			return fmt.Sprintf("%s: %v", key, err)
		}
		*def.bool(c) = b
	case kInt:
		n, err := conffile.ParseExtUint(value)
		if err != nil {
			return fmt.Sprintf("%s: %v", key, err)
		}
		*def.int(c) = n
	case kDuration:
		// Dovecot 2.3 has no time setting in this file; authd's own
		// authd_* ones take the main configuration's syntax.
		d, err := conffile.ParseDuration(value, true)
		if err != nil {
			return fmt.Sprintf("%s: %v", key, err)
		}
		*def.dur(c) = d
	}
	return ""
}

// where returns "file:line" of key, or the file name when the key kept its
// default.
func (c *config) where(key string) string {
	if p, ok := c.pos[key]; ok {
		return p
	}
	return c.path
}
