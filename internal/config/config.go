package config

import (
	"fmt"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// Config is authd's effective configuration, built from a Dovecot-syntax
// file. Every field holds its default when the file does not set it.
type Config struct {
	// Syntax is the configuration's language: Dovecot 2.3's, or 2.4's
	// when the file starts with dovecot_config_version. Every template in
	// the Config (auth_username_format, fields, driver settings) is
	// written in it; parse them with Syntax.Parse.
	Syntax vars.Syntax
	// ConfigVersion is dovecot_config_version ("" in 2.3 syntax).
	ConfigVersion string

	BaseDir   string     // base_dir, default "/run/authd"
	LoginUser string     // default_login_user, default dovenull: login/ and login sockets get its group
	Auth      Auth       // the auth_* settings
	Passdbs   []DB       // passdb { } blocks in file order (master ones included)
	Userdbs   []DB       // userdb { } blocks in file order; see Load for the empty case
	Listeners []Listener // service auth { unix_listener … } merged over the defaults
	// InetListeners are service auth { inet_listener … }: the client
	// protocol over TCP, for a remote Postfix (inet.go).
	InetListeners []InetListener
	GRPC          GRPC    // authd's own grpc { } section
	Metrics       Metrics // authd's own metrics { } section
	Penalty       Penalty // authd's own penalty { } section: the brute-force defence
	Redis         Redis   // authd's own redis { } section: state shared with other authd processes
	// HashBudget is authd's own hash_budget { } section: the most work a
	// stored password hash may ask for, schemes' defaults filled in.
	HashBudget      schemes.Limits
	Log             Log // authd's own log_format
	ShutdownTimeout time.Duration

	// OAuth2 holds the Dovecot 2.4 oauth2_* settings of the top level and
	// of oauth2 { } (its HTTP/TLS client settings as "oauth2/KEY"), so that
	// they print and convert; every oauth2 passdb also has them among its
	// DriverSettings, which is what the driver reads.
	OAuth2 []DriverSetting

	// Ignored names the Dovecot settings and sections of other services
	// that were accepted without effect, sorted and deduplicated, so authd
	// can log once what it did not use. Sections appear as "type label"
	// (e.g. "protocol imap", "service imap-login"); settings inside
	// service auth as "service auth/name".
	Ignored []string
	// Warnings are things that loaded but look wrong or behave
	// differently from what the file may intend (e.g. an ambiguous '#').
	Warnings []*Error
	// Files lists every file read: the configuration, its includes and
	// the `<file` values authd used.
	Files []string
	// SettingPos is where each top-level setting authd reads was last set
	// (2.3 syntax), for messages about a value found after loading.
	SettingPos map[string]Pos
}

// Auth holds the auth_* settings (Dovecot 2.3 names and defaults,
// docs/protocol.md §5.1).
type Auth struct {
	Mechanisms          []string // auth_mechanisms, upper-cased; default [PLAIN]
	Realms              []string // auth_realms
	DefaultRealm        string   // auth_default_realm (2.4: auth_default_domain)
	UsernameChars       string   // auth_username_chars; "" allows every character
	UsernameTranslation string   // auth_username_translation, pairs of from/to characters
	UsernameFormat      string   // auth_username_format, default %Lu (2.4: %{user | lower})
	// ProtocolUsernameFormat holds Dovecot 2.4's per-protocol
	// auth_username_format (`protocol lmtp { auth_username_format = … }`,
	// which Debian 13's stock 20-lmtp.conf sets), by protocol.
	ProtocolUsernameFormat map[string]string
	MasterUserSeparator    string // auth_master_user_separator, "" = off
	AnonymousUsername      string // auth_anonymous_username, default anonymous

	FailureDelay time.Duration // auth_failure_delay, default 2s

	// Dovecot 2.4 settings that authd reads and prints but that change
	// nothing in it: auth_allow_cleartext belongs to the login processes
	// (2.3's disable_plaintext_auth, inverted), and authd has no
	// internal-failure delay and no weak-scheme filter.
	AllowCleartext       bool          // auth_allow_cleartext, default no
	AllowWeakSchemes     bool          // auth_allow_weak_schemes, default no
	InternalFailureDelay time.Duration // auth_internal_failure_delay, default 2s

	CacheSize                      int64         // auth_cache_size in bytes, 0 = cache off
	CacheTTL                       time.Duration // auth_cache_ttl, default 1h
	CacheNegativeTTL               time.Duration // auth_cache_negative_ttl, default 1h
	CacheVerifyPasswordWithWorker  bool          // auth_cache_verify_password_with_worker
	CacheVerifyPasswordFingerprint bool          // authd's auth_cache_password_fingerprint, default yes

	SSLRequireClientCert bool // auth_ssl_require_client_cert
	SSLUsernameFromCert  bool // auth_ssl_username_from_cert

	// Logging. As in Dovecot, auth_debug_passwords implies auth_debug and
	// auth_debug implies auth_verbose; the fields hold the implied values.
	Verbose          bool
	Debug            bool
	DebugPasswords   bool
	VerbosePasswords string // auth_verbose_passwords: no, plain or sha1, optionally ":N" (yes means plain)

	FirstValidUID, LastValidUID uint32 // default 500, 0 (0 = no upper limit)
	FirstValidGID, LastValidGID uint32 // default 1, 0

	WorkerMaxCount int // auth_worker_max_count, accepted for compatibility (default 30)

	// ProxySelf is auth_proxy_self: addresses or host names that are this
	// server too when proxy_maybe decides (engine.ProxyFinisher).
	ProxySelf []string

	// Policy holds the auth_policy_* settings: Dovecot's auth policy
	// server hook (weakforced, Nauthilus), on when Policy.URL is set.
	Policy policy.Settings
}

// DriverSetting is one driver setting of a passdb/userdb block: in 2.3 one
// written inline instead of in an args file, in 2.4 one of the driver's
// own settings (passwd_file_path, ldap_base …, by their full 2.4 names),
// with the value that applies to the block, wherever it was written.
type DriverSetting struct {
	Key, Value string
	Pos        Pos
}

// Field is one entry of a Dovecot 2.4 fields { } list: the field name
// (with its :default or :remove suffix, as written) and its template.
type Field struct {
	Key, Value string
	Pos        Pos
}

// SQLHost is one Dovecot 2.4 `mysql HOST { }` or `pgsql HOST { }` section:
// the host and the driver settings that apply to it (mysql_user,
// pgsql_parameters/… by their full names; top-level ones included).
type SQLHost struct {
	Host     string
	Settings []DriverSetting
	Pos      Pos
}

// SQLConnection is a Dovecot 2.4 block's SQL database: sql_driver and the
// driver's connection settings.
type SQLConnection struct {
	Driver string    // sql_driver: mysql, pgsql or sqlite
	Hosts  []SQLHost // mysql/pgsql host sections, in file order
	// Settings are the driver's settings outside host sections (sqlite_path,
	// sqlite_readonly, sqlite_journal_mode; mysql_*/pgsql_* given at a
	// level that applies to every host are in each host's Settings).
	Settings []DriverSetting
	Pos      Pos
}

// DB is one passdb { } or userdb { } block (docs/protocol.md §5.4).
type DB struct {
	Name           string // the section label, or `name =`
	Driver         string // not checked here: the engine knows its drivers
	Args           string // verbatim; the driver parses it
	DefaultFields  string
	OverrideFields string

	// Skip is never, authenticated or unauthenticated for a passdb and
	// never, found or notfound for a userdb.
	Skip Skip
	// The result rules. A passdb with pass=yes has ResultSuccess
	// RuleContinue, the meaning Dovecot gives that obsolete flag.
	ResultSuccess, ResultFailure, ResultInternalfail Rule

	// Passdb only. Mechanisms is nil for "any mechanism"; it holds
	// upper-cased names, and "NONE" stands for lookups made without a
	// mechanism. UsernameFilter holds the globs of username_filter (split
	// at blanks and commas; a leading `!` negates).
	Mechanisms         []string
	UsernameFilter     []string
	Deny, Master, Pass bool

	AuthVerbose Verbosity

	// DriverSettings are a driver's own settings: in 2.3 the ones written
	// inline in the block instead of in an args file (for driver = sql:
	// connect, password_query, user_query, iterate_query,
	// default_pass_scheme and sql_driver), in file order; in 2.4 every
	// setting of the driver that applies to the block (see DriverSetting).
	DriverSettings []DriverSetting

	// Dovecot 2.4 only (Config.Syntax24); zero in 2.3.
	//
	// Fields is the block's fields { } (2.3's default_fields and
	// override_fields); FieldsImportAll whether the driver's own fields are
	// kept too (fields_import_all). DefaultPasswordScheme is
	// default_password_scheme, with 2.4's per-driver defaults (CRYPT for
	// passwd-file, ldap and passwd; PLAIN otherwise); 2.3 writes it in
	// args. SQL is the block's database for driver = sql.
	Fields                []Field
	FieldsImportAll       bool
	DefaultPasswordScheme string
	UseCache, UseWorker   bool
	SQL                   *SQLConnection
	Pos                   Pos
}

// Metrics is authd's own `metrics { }` section; off when Listen is empty.
type Metrics struct {
	Listen string // host:port of the HTTP /metrics endpoint
	Pos    Pos
}

// Log is authd's own top-level log_format (text or json).
type Log struct {
	Format string
}

// Load reads the configuration at path with everything it includes, and
// checks it. On failure the error is an *ErrorList with every problem found.
//
// When no userdb is configured, Userdbs holds one `static` userdb with no
// arguments (Pos is zero), the stand-in Dovecot itself uses.
func Load(path string) (*Config, error) {
	return load(path, nil, true, nil)
}

// LoadBytes is Load for a configuration held in memory (the embedded demo
// configuration). name is used in messages; includes and `<file` paths are
// relative to the directory of name, or to the working directory when name
// has none.
func LoadBytes(name string, data []byte) (*Config, error) {
	return load(name, data, false, nil)
}

func load(name string, data []byte, fromFile bool, opts *conffile.Options) (*Config, error) {
	o := opts.Resolved()
	if fromFile {
		var err error
		if data, err = o.ReadFile(name); err != nil {
			return nil, ErrorList{{Pos: Pos{File: name}, Msg: "can't read configuration: " + conffile.ErrorText(err)}}.err()
		}
	}
	version, line, v24 := conffile.DetectVersion(data)
	if v24 {
		if msg := checkConfigVersion(version); msg != "" {
			return nil, ErrorList{{Pos: Pos{File: name, Line: line}, Msg: msg}}.err()
		}
		o.Version = conffile.Version24
	}
	res := conffile.Read(name, data, &o)
	if fromFile {
		res.Files = append([]string{name}, res.Files...)
	}

	b := newBuilder(o, name)
	if o.Version == conffile.Version24 {
		b.v24 = true
		b.cfg.Syntax = vars.Syntax24
		b.cfg.ConfigVersion = version
		b.defaults24()
		b.build24(res.Root)
	} else {
		b.build(res.Root)
	}

	fileNo := map[string]int{name: 0}
	for _, f := range append(append([]string{}, res.Files...), b.files...) {
		if _, ok := fileNo[f]; !ok {
			fileNo[f] = len(fileNo)
		}
	}
	errs := append(append(ErrorList{}, res.Errors...), b.errs...)
	if len(errs) > 0 {
		return nil, sortErrors(errs, fileNo).err()
	}
	cfg := b.cfg
	cfg.SettingPos = b.lastPos
	cfg.Warnings = sortErrors(append(append(ErrorList{}, res.Warnings...), b.warns...), fileNo)
	cfg.Files = res.Files
	for _, f := range b.files {
		cfg.Files = appendUnique(cfg.Files, f)
	}
	return cfg, nil
}

// checkConfigVersion accepts the dovecot_config_version values of Dovecot
// 2.4 (2.4.0 and 2.4.1 in Dovecot 2.4.1; later 2.4 releases add their own,
// which authd reads as 2.4.1's language).
func checkConfigVersion(v string) string {
	rest, ok := strings.CutPrefix(v, "2.4.")
	if !ok || rest == "" || strings.Trim(rest, "0123456789") != "" {
		return fmt.Sprintf("dovecot_config_version: %q is not a Dovecot 2.4 configuration version (authd reads 2.4.0 and 2.4.1)", v)
	}
	return ""
}

func appendUnique(list []string, s string) []string {
	for _, x := range list {
		if x == s {
			return list
		}
	}
	return append(list, s)
}
