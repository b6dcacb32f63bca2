package ldap

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

var (
	_ backends.Passdb   = (*DB)(nil)
	_ backends.Userdb   = (*DB)(nil)
	_ backends.Iterator = (*DB)(nil)
	_ backends.Closer   = (*DB)(nil)
	_ backends.Verifier = (*DB)(nil)
)

// searchSizeLimit asks the server for at most two entries per lookup: one
// is the answer, a second one proves the filter ambiguous (an error, as in
// Dovecot), and more would only cost.
const searchSizeLimit = 2

// iteratePageSize is the RFC 2696 page size for LIST. It stays below
// slapd's default soft size limit (500).
const iteratePageSize = 250

// DB is one dovecot-ldap.conf.ext: the LDAP passdb and userdb. One DB
// serves both (Dovecot shares one connection per file the same way), and
// is safe for concurrent use.
type DB struct {
	cfg *config
	log *slog.Logger

	base       *vars.Template
	baseStatic bool
	passFilter *vars.Template
	userFilter *vars.Template
	iterFilter *vars.Template
	userDN     *vars.Template // auth_bind_userdn; nil unless auth_bind = yes
	authBind   bool

	pass, user, iter *attrMap
	scope, deref     int
	defaultScheme    string

	dial *dialer
	svc  *pool       // service connections: listings (LIST)
	look *lookupPool // service connections: lookups, multiplexed (mux.go)
	auth *pool       // auth_bind: user binds only; nil otherwise

	passKey, userKey *vars.Template
	pageSize         uint32 // RFC 2696 page size for LIST; tests lower it
}

// New reads the dovecot-ldap.conf.ext file named by args (the passdb or
// userdb args, as in Dovecot). Nothing is connected yet: the first lookup
// connects, so authd starts while the directory is down. Every problem in
// the file is reported at once, each with its file:line, wrapped in
// backends.ErrConfig.
func New(args string, log *slog.Logger) (*DB, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	path := strings.TrimSpace(args)
	if path == "" {
		return nil, fmt.Errorf("%w: ldap: no configuration file given in args", backends.ErrConfig)
	}
	cfg, err := parseConfig(path)
	if cfg == nil {
		return nil, fmt.Errorf("%w: ldap: %w", backends.ErrConfig, err)
	}
	errs := []error{}
	if err != nil {
		errs = append(errs, err)
	}
	d, berrs := build(cfg, log)
	errs = append(errs, berrs...)
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: ldap: %w", backends.ErrConfig, errors.Join(errs...))
	}
	for _, w := range cfg.warnings {
		log.Warn("ldap: " + w)
	}
	return d, nil
}

// dummyContext fills every variable, so that templates can be expanded at
// load time to check that they make a valid filter or DN.
var dummyContext = &vars.Context{
	User: "x@x", Service: "x", Mech: "x", LocalIP: "127.0.0.1", RemoteIP: "127.0.0.1",
	Password: "x", Session: "x", LocalName: "x", ClientID: "x", MasterUser: "x", LoginUser: "x",
}

// build interprets a read configuration. It returns every error found.
func build(c *config, log *slog.Logger) (*DB, []error) {
	e := &confErrs{c: c}
	d := &DB{cfg: c, log: log.With("ldap", c.path), authBind: c.authBind, pageSize: iteratePageSize}
	targets := d.checkSettings(e)
	d.compileTemplates(e)
	d.compileAttrs(e)
	svcBind := serviceBinder(c, e)
	for _, t := range targets {
		if t.scheme == "ldaps" && c.tls {
			// StartTLS inside TLS: Dovecot stops with the same advice.
			e.bad("tls", "don't use both tls = yes and an ldaps:// URI")
		}
	}
	tlsConf, terrs := tlsConfig(c)
	e.errs = append(e.errs, terrs...)
	warnIgnored(c)
	if len(e.errs) > 0 {
		return nil, e.errs
	}
	d.openPools(targets, tlsConf, svcBind)
	d.cacheKeys()
	return d, nil
}

// confErrs collects build's errors, each "file:line: key: message" with
// the line where key was set.
type confErrs struct {
	c    *config
	errs []error
}

func (e *confErrs) bad(key, format string, args ...any) {
	e.errs = append(e.errs, fmt.Errorf("%s: %s: %s", e.c.where(key), key, fmt.Sprintf(format, args...)))
}

// checkSettings checks the plain settings (base, servers, protocol
// version, scope, deref, scheme, pool) and returns the servers.
func (d *DB) checkSettings(e *confErrs) []target {
	c := d.cfg
	if !c.baseSet {
		e.bad("base", "no base given (Dovecot requires it)")
	}
	if strings.TrimSpace(c.uris) == "" && strings.TrimSpace(c.hosts) == "" {
		e.bad("uris", "neither uris nor hosts is set")
	}
	targets, err := parseTargets(c.uris, c.hosts)
	if err != nil {
		key := "uris"
		if strings.TrimSpace(c.uris) == "" {
			key = "hosts"
		}
		e.bad(key, "%v", err)
	}
	if c.ldapVersion != 3 {
		e.bad("ldap_version", "only LDAPv3 is supported (got %d)", c.ldapVersion)
	}
	d.scope, d.deref = searchScope(c, e), derefAliases(c, e)
	if s, ok := schemes.Canonical(c.defaultPassScheme); ok {
		d.defaultScheme = s
	} else {
		e.bad("default_pass_scheme", "unknown password scheme %q", c.defaultPassScheme)
	}
	if c.poolSize < 1 || c.poolSize > 1024 {
		e.bad("authd_pool_size", "must be between 1 and 1024 (got %d)", c.poolSize)
	}
	if c.timeout <= 0 {
		e.bad("authd_timeout", "must be positive")
	}
	return targets
}

func searchScope(c *config, e *confErrs) int {
	switch strings.ToLower(c.scope) {
	case "base":
		return goldap.ScopeBaseObject
	case "onelevel":
		return goldap.ScopeSingleLevel
	case "subtree":
		return goldap.ScopeWholeSubtree
	}
	e.bad("scope", "unknown scope %q (base, onelevel or subtree)", c.scope)
	return 0
}

func derefAliases(c *config, e *confErrs) int {
	switch strings.ToLower(c.deref) {
	case "never":
		return goldap.NeverDerefAliases
	case "searching":
		return goldap.DerefInSearching
	case "finding":
		return goldap.DerefFindingBaseObj
	case "always":
		return goldap.DerefAlways
	}
	e.bad("deref", "unknown deref option %q (never, searching, finding or always)", c.deref)
	return 0
}

// template parses the value of key; unknown variables are errors.
func (e *confErrs) template(key, src string) *vars.Template {
	t, err := e.c.syntax.Parse(src)
	if err != nil {
		e.bad(key, "%v", err)
		return nil
	}
	if u := t.Unknown(); len(u) > 0 {
		e.bad(key, "unknown variable %%%s", u[0])
		return nil
	}
	return t
}

// filter parses the filter template of key and checks that it makes a
// valid filter. Escaped values cannot change a filter's structure, so one
// expansion with dummy values shows whether it is well formed.
func (e *confErrs) filter(key, src string) *vars.Template {
	t := e.template(key, src)
	if t == nil {
		return nil
	}
	if _, err := goldap.CompileFilter(t.Expand(dummyContext, EscapeFilter)); err != nil {
		e.bad(key, "not a valid LDAP filter: %v", err)
	}
	return t
}

// compileTemplates parses base, the filters and auth_bind_userdn.
func (d *DB) compileTemplates(e *confErrs) {
	c := d.cfg
	d.base = e.template("base", c.base)
	if d.base != nil {
		d.baseStatic = d.base.Static()
		if _, err := goldap.ParseDN(d.base.Expand(dummyContext, EscapeDN)); err != nil {
			e.bad("base", "not a valid DN: %v", err)
		}
	}
	d.passFilter = e.filter("pass_filter", c.passFilter)
	d.userFilter = e.filter("user_filter", c.userFilter)
	d.iterFilter = e.filter("iterate_filter", c.iterateFilter)
	if c.authBindUserDN == "" {
		return
	}
	if !c.authBind {
		c.warnings = append(c.warnings, fmt.Sprintf("%s: auth_bind_userdn is ignored without auth_bind = yes", c.where("auth_bind_userdn")))
	} else if t := e.template("auth_bind_userdn", c.authBindUserDN); t != nil {
		if _, err := goldap.ParseDN(t.Expand(dummyContext, EscapeDN)); err != nil {
			e.bad("auth_bind_userdn", "not a valid DN: %v", err)
		}
		d.userDN = t
	}
}

// compileAttrs parses the three attribute lists.
func (d *DB) compileAttrs(e *confErrs) {
	c := d.cfg
	attrs := func(key, src, skip string) *attrMap {
		m, err := parseAttrs(src, skip)
		if err != nil {
			e.bad(key, "%v", err)
			return &attrMap{}
		}
		return m
	}
	skip := ""
	if c.authBind {
		// Dovecot drops the password field with auth_bind: the password is
		// checked by binding, and a readable hash would be ignored anyway.
		skip = "password"
	}
	if c.syntax == vars.Syntax24 {
		fields := func(key string, list [][2]string, skip string) *attrMap {
			m, err := parseFields24(list, skip)
			if err != nil {
				e.bad(key, "%v", err)
				return &attrMap{}
			}
			return m
		}
		d.pass = fields("passdb_fields", c.passFields, skip)
		d.user = fields("userdb_fields", c.userFields, "")
		d.iter = fields("userdb_ldap_iterate_fields", c.iterFlds, "")
		return
	}
	d.pass = attrs("pass_attrs", c.passAttrs, skip)
	d.user = attrs("user_attrs", c.userAttrs, "")
	d.iter = attrs("iterate_attrs", c.iterateAttrs, "")
}

// serviceBinder is how the service connections bind: dn/dnpass, or SASL
// EXTERNAL.
func serviceBinder(c *config, e *confErrs) *binder {
	if !c.saslBind {
		if c.dn != "" {
			if _, err := goldap.ParseDN(c.dn); err != nil {
				e.bad("dn", "not a valid DN: %v", err)
			}
		}
		return &binder{dn: c.dn, pass: c.dnpass}
	}
	if !strings.EqualFold(c.saslMech, "EXTERNAL") {
		e.bad("sasl_mech", "SASL mechanism %q is not supported by authd (supported: EXTERNAL)", c.saslMech)
	}
	return &binder{saslExternal: true, authzID: c.saslAuthzID}
}

// warnIgnored warns about the settings Dovecot honours and authd cannot.
func warnIgnored(c *config) {
	warn := func(key, msg string) {
		c.warnings = append(c.warnings, fmt.Sprintf("%s: %s %s", c.where(key), key, msg))
	}
	if c.tlsCipherSuite != "" {
		warn("tls_cipher_suite", "is ignored (Go's TLS chooses its cipher suites)")
	}
	if c.ldaprcPath != "" {
		warn("ldaprc_path", "is ignored: put the settings in this file")
	}
	if c.saslRealm != "" {
		// Only EXTERNAL is supported, and it has no realm.
		warn("sasl_realm", "is ignored (SASL EXTERNAL has no realm)")
	}
	if c.debugLevel != "" && c.debugLevel != "0" {
		warn("debug_level", "is ignored: use auth_debug = yes for authd's LDAP debug log")
	}
}

// openPools creates the connection pools; nothing is dialled yet.
func (d *DB) openPools(targets []target, tlsConf *tls.Config, svcBind *binder) {
	c := d.cfg
	d.dial = &dialer{
		targets:   targets,
		tls:       tlsConf,
		startTLS:  c.tls,
		timeout:   c.timeout,
		failback:  c.failback,
		log:       d.log,
		downUntil: make([]time.Time, len(targets)),
	}
	d.svc = newPool(d.dial, svcBind, c.poolSize)
	d.look = newLookupPool(d.dial, svcBind, c.poolSize)
	if c.authBind {
		d.auth = newRawPool(d.dial, c.poolSize)
	}
}

// cacheKeys builds the cache keys (docs/protocol.md §5.9): Dovecot builds
// them from the text of base, the attrs and the filter; the LDAP-only
// variables are left out here because they are not request values. The
// bind DN template decides the answer with auth_bind_userdn, so it counts
// too.
func (d *DB) cacheKeys() {
	pk := []*vars.Template{d.base, d.passFilter}
	if d.userDN != nil {
		pk = append(pk, d.userDN)
	}
	d.passKey = vars.CacheKeyOf(append(pk, d.pass.keyTemplates...)...)
	d.userKey = vars.CacheKeyOf(append([]*vars.Template{d.base, d.userFilter}, d.user.keyTemplates...)...)
}

// tlsConfig builds the client TLS settings from tls_* (the OpenLDAP option
// names Dovecot passes on). tls_require_cert never/allow skip
// verification, as libldap does; demand, hard and try (and the default)
// verify the server against tls_ca_cert_file/dir or the system roots.
func tlsConfig(c *config) (*tls.Config, []error) {
	var errs []error
	bad := func(key, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s: %s", c.where(key), key, fmt.Sprintf(format, args...)))
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	if c.tlsCACertFile != "" || c.tlsCACertDir != "" {
		roots := x509.NewCertPool()
		if c.tlsCACertFile != "" {
			pem, err := os.ReadFile(c.tlsCACertFile)
			if err != nil {
				bad("tls_ca_cert_file", "%v", err)
			} else if !roots.AppendCertsFromPEM(pem) {
				bad("tls_ca_cert_file", "%s holds no PEM certificate", c.tlsCACertFile)
			}
		}
		if c.tlsCACertDir != "" {
			ents, err := os.ReadDir(c.tlsCACertDir)
			if err != nil {
				bad("tls_ca_cert_dir", "%v", err)
			}
			for _, e := range ents {
				if e.IsDir() {
					continue
				}
				if pem, err := os.ReadFile(filepath.Join(c.tlsCACertDir, e.Name())); err == nil {
					roots.AppendCertsFromPEM(pem)
				}
			}
		}
		tc.RootCAs = roots
	}
	if (c.tlsCertFile == "") != (c.tlsKeyFile == "") {
		bad("tls_cert_file", "tls_cert_file and tls_key_file go together")
	} else if c.tlsCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.tlsCertFile, c.tlsKeyFile)
		if err != nil {
			bad("tls_cert_file", "%v", err)
		} else {
			tc.Certificates = []tls.Certificate{cert}
		}
	}
	switch strings.ToLower(c.tlsRequireCert) {
	case "", "demand", "hard", "try":
	case "never", "allow":
		tc.InsecureSkipVerify = true
	default:
		bad("tls_require_cert", "unknown value %q (never, hard, demand, allow or try)", c.tlsRequireCert)
	}
	return tc, errs
}

// DefaultScheme is the scheme of passwords stored without a {…} prefix.
func (d *DB) DefaultScheme() string { return d.defaultScheme }

// VerifiesPasswords implements backends.Verifier: passwords are checked by
// binding as the user (auth_bind = yes). Otherwise the engine verifies
// the stored password from LookupPass itself.
func (d *DB) VerifiesPasswords() bool { return d.authBind }

// PassCacheKey is the default auth cache key template of the passdb.
func (d *DB) PassCacheKey() *vars.Template { return d.passKey }

// UserCacheKey is the default auth cache key template of the userdb.
func (d *DB) UserCacheKey() *vars.Template { return d.userKey }

// Close closes every connection. Lookups after Close fail.
func (d *DB) Close() error {
	d.svc.close()
	d.look.close()
	if d.auth != nil {
		d.auth.close()
	}
	return nil
}

func requestVars(req *backends.Request) *vars.Context {
	if req.Vars != nil {
		return req.Vars
	}
	return &vars.Context{User: req.User}
}

// find runs one lookup search: the base and filter expanded for the
// request, at most one entry expected.
func (d *DB) find(ctx context.Context, req *backends.Request, filterT *vars.Template, attrs []string, what string) (*entry, bool, error) {
	vc := requestVars(req)
	base := d.base.Expand(vc, EscapeDN)
	if !d.baseStatic {
		if _, err := goldap.ParseDN(base); err != nil {
			// A user name that makes the base DN invalid (an empty %d, say)
			// cannot name an entry under it.
			d.log.Debug("ldap: base is not a valid DN for this user", "user", req.User, "err", err)
			return nil, false, nil
		}
	}
	filter := filterT.Expand(vc, EscapeFilter)
	if len(attrs) == 0 {
		// RFC 4511 §4.5.1.8: "1.1" asks for no attributes at all, where an
		// empty list would return every one.
		attrs = []string{"1.1"}
	}
	res := d.look.search(ctx, base, d.scope, d.deref, filter, attrs)
	err := res.err
	if d.log.Enabled(ctx, slog.LevelDebug) {
		d.log.Debug("ldap: search", "what", what, "user", req.User, "base", base, "err", err)
	}
	if err != nil {
		var le *goldap.Error
		// Only the search's own result code says something about the user:
		// the same codes from the service bind (a malformed dn, say) are a
		// broken connection, an error like any other.
		if res.answered && errors.As(err, &le) {
			switch {
			case le.ResultCode == goldap.LDAPResultNoSuchObject:
				// The base does not exist: Dovecot treats this as "no
				// entry" (db_ldap_handle_request_result).
				return nil, false, nil
			case le.ResultCode == goldap.LDAPResultInvalidDNSyntax && !d.baseStatic:
				return nil, false, nil
			case le.ResultCode == goldap.LDAPResultSizeLimitExceeded && len(res.entries) > 1:
				return nil, false, fmt.Errorf("ldap: %s matched multiple objects for %q", what, req.User)
			}
		}
		return nil, false, fmt.Errorf("ldap: %s search for %q: %w", what, req.User, err)
	}
	switch len(res.entries) {
	case 0:
		return nil, false, nil
	case 1:
	default:
		return nil, false, fmt.Errorf("ldap: %s matched multiple objects for %q", what, req.User)
	}
	return res.entries[0], true, nil
}

func toEntry(e *goldap.Entry) *entry {
	out := &entry{dn: e.DN, attrs: make(map[string][]string, len(e.Attributes))}
	for _, a := range e.Attributes {
		k := strings.ToLower(a.Name)
		out.attrs[k] = append(out.attrs[k], a.Values...)
	}
	return out
}

func (d *DB) multiWarner(user string) func(string) {
	return func(attr string) {
		// Only the attribute's name: the value may be a password.
		d.log.Warn("ldap: multiple values found, using the first", "attr", attr, "user", user)
	}
}

// passEntry maps a passdb search result to a PassEntry: the password
// (Dovecot's "password" / "password_noscheme" fields, split with the
// strict {…} rule, docs/schemes.md §2.1) and the extra fields.
func (d *DB) passEntry(e *entry, req *backends.Request) backends.PassEntry {
	var pe backends.PassEntry
	warn := d.multiWarner(req.User)
	d.pass.resolve(e, requestVars(req), warn, func(name string, values []string) {
		if values == nil {
			return // attribute absent: Dovecot leaves the field unset
		}
		if len(values) > 1 {
			warn(name)
		}
		v := values[0]
		switch name {
		case "password", "password_noscheme":
			if pe.HasPassword {
				d.log.Error("ldap: multiple password fields, keeping the first", "user", req.User)
				return
			}
			pe.HasPassword = true
			if name == "password" {
				pe.Scheme, pe.Data = schemes.SplitStrict(v)
			} else {
				pe.Data = v
			}
			if pe.Scheme == "" {
				pe.Scheme = d.defaultScheme
			}
		default:
			pe.Fields.Set(name, v)
		}
	})
	return pe
}

// LookupPass implements backends.Passdb: the entry pass_filter finds under
// base, mapped through pass_attrs. With auth_bind = yes the password field
// is not read (HasPassword is false) and the fields alone are returned, as
// Dovecot does for lookups without authentication.
func (d *DB) LookupPass(ctx context.Context, req *backends.Request) (backends.PassAnswer, error) {
	e, found, err := d.find(ctx, req, d.passFilter, d.pass.attrs, "pass_filter")
	if err != nil {
		return backends.PassAnswer{}, err
	}
	if !found {
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.PassAnswer{Outcome: backends.Found, PassEntry: d.passEntry(e, req)}, nil
}

// LookupUser implements backends.Userdb: the entry user_filter finds,
// mapped through user_attrs. An absent attribute gives no field; a
// multi-valued gid becomes a comma-separated list and any other
// multi-valued field keeps its first value, as in Dovecot 2.3
// (auth_request_set_userdb_field_values).
func (d *DB) LookupUser(ctx context.Context, req *backends.Request) (backends.UserAnswer, error) {
	e, found, err := d.find(ctx, req, d.userFilter, d.user.attrs, "user_filter")
	if err != nil {
		return backends.UserAnswer{}, err
	}
	if !found {
		return backends.UserAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.UserAnswer{Outcome: backends.Found, Fields: d.userFields(e, req)}, nil
}

// userFields maps a userdb search result through user_attrs.
func (d *DB) userFields(e *entry, req *backends.Request) fields.Fields {
	fs := fields.Fields{}
	warn := d.multiWarner(req.User)
	d.user.resolve(e, requestVars(req), warn, func(name string, values []string) {
		switch {
		case len(values) == 0:
			return
		case name == "gid" && len(values) > 1:
			fs.Set(name, strings.Join(values, ","))
		default:
			if len(values) > 1 {
				warn(name)
			}
			fs.Set(name, values[0])
		}
	})
	return fs
}

// VerifyPass implements backends.Verifier.
//
// With auth_bind = yes the entry is found with pass_filter on the service
// connection and its DN is bound with password on a connection of the
// auth-bind pool; with auth_bind_userdn the DN comes from that template and
// nothing is searched (so no fields are returned, and since LDAP servers
// answer invalidCredentials for a DN that does not exist, an unknown user
// looks like a wrong password, as in Dovecot). An empty password is never
// sent: a simple bind without password is an anonymous bind (RFC 4513
// §5.1.2) that would "succeed"; it is a wrong password.
//
// Without auth_bind VerifyPass is LookupPass plus schemes.Verify, so the
// method is correct whichever way a caller uses it; the engine prefers its
// own verification then (see VerifiesPasswords). Field policy
// (nopassword, allow_nets …) stays with the engine in every mode.
func (d *DB) VerifyPass(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	if !d.authBind {
		return d.lookupAndVerify(ctx, req, password)
	}
	ans := backends.PassAnswer{Outcome: backends.Mismatch}
	var dn string
	if d.userDN != nil {
		if len(password) == 0 {
			return ans, nil
		}
		dn = d.userDN.Expand(requestVars(req), EscapeDN)
		if _, err := goldap.ParseDN(dn); err != nil {
			return backends.PassAnswer{Outcome: backends.Unknown}, nil
		}
	} else {
		e, found, err := d.find(ctx, req, d.passFilter, d.pass.attrs, "pass_filter")
		if err != nil {
			return backends.PassAnswer{}, err
		}
		if !found {
			return backends.PassAnswer{Outcome: backends.Unknown}, nil
		}
		ans.PassEntry = d.passEntry(e, req)
		if len(password) == 0 {
			return ans, nil
		}
		dn = e.dn
	}
	return d.bindAs(ctx, req, dn, password, ans)
}

// lookupAndVerify is VerifyPass without auth_bind.
func (d *DB) lookupAndVerify(ctx context.Context, req *backends.Request, password []byte) (backends.PassAnswer, error) {
	ans, err := d.LookupPass(ctx, req)
	if err != nil || ans.Outcome != backends.Found {
		return ans, err
	}
	if !ans.HasPassword {
		ans.Outcome = backends.Mismatch
		return ans, nil
	}
	ok, err := schemes.Verify(ans.Scheme, ans.Data, password, req.User)
	if err != nil {
		return backends.PassAnswer{}, fmt.Errorf("ldap: stored password of %q: %w", req.User, err)
	}
	if !ok {
		ans.Outcome = backends.Mismatch
	}
	return ans, nil
}

// bindAs checks password with a bind as dn on the auth-bind pool. ans
// carries the entry's fields, with the outcome Mismatch.
func (d *DB) bindAs(ctx context.Context, req *backends.Request, dn string, password []byte, ans backends.PassAnswer) (backends.PassAnswer, error) {
	err := d.auth.bindAs(ctx, dn, password)
	var le *goldap.Error
	switch {
	case err == nil:
		ans.Outcome = backends.Found
		return ans, nil
	case errors.As(err, &le) && le.ResultCode == goldap.LDAPResultInvalidCredentials:
		return ans, nil
	case errors.As(err, &le) && (le.ResultCode == goldap.LDAPResultNoSuchObject || le.ResultCode == goldap.LDAPResultInvalidDNSyntax):
		// The entry vanished between search and bind, or the DN template
		// names nothing. noSuchObject is "unknown user" in Dovecot too
		// (ldap_auth_bind_callback); invalidDNSyntax is a temporary
		// failure there, but here it only comes from a user name that
		// cannot form a DN (an empty %n or %d in auth_bind_userdn), which
		// is not an outage: answering "unknown user" spares a log error
		// and a retry loop for a typo.
		return backends.PassAnswer{Outcome: backends.Unknown}, nil
	}
	return backends.PassAnswer{}, fmt.Errorf("ldap: bind as %q: %w", req.User, err)
}

// IterateUsers implements backends.Iterator: iterate_filter under base,
// read in RFC 2696 pages on one service connection (the paging cookie
// belongs to the connection), every value of every field named "user"
// listed, as Dovecot does. base and iterate_filter are expanded without a
// user, so a base that needs %u/%d cannot be listed. A listing cut short
// by the server's size limit is an error after the users already passed
// to fn. fn runs while the listing holds one service connection: with
// authd_pool_size = 1 it must not wait for a lookup on the same DB.
func (d *DB) IterateUsers(ctx context.Context, fn func(user string) bool) error {
	vc := &vars.Context{}
	base := d.base.Expand(vc, EscapeDN)
	if _, err := goldap.ParseDN(base); err != nil {
		return fmt.Errorf("ldap: cannot list users: base %q needs values a listing does not have: %w", d.base.String(), err)
	}
	filter := d.iterFilter.Expand(vc, EscapeFilter)
	attrs := d.iter.attrs
	if len(attrs) == 0 {
		attrs = []string{"1.1"}
	}
	pc, _, err := d.svc.acquire(ctx)
	if err != nil {
		return err
	}
	healthy := false
	defer func() { d.svc.release(pc, healthy, !healthy && ctx.Err() == nil) }()

	paging := goldap.NewControlPaging(d.pageSize)
	sreq := goldap.NewSearchRequest(base, d.scope, d.deref, 0, 0, false, filter, attrs, []goldap.Control{paging})
	warned := map[string]bool{}
	listed := 0
	for {
		var res *goldap.SearchResult
		err := runOp(ctx, pc.c, d.dial.timeout, func(c *goldap.Conn) error {
			var err error
			res, err = c.Search(sreq)
			return err
		})
		var le *goldap.Error
		limited := errors.As(err, &le) && le.ResultCode == goldap.LDAPResultSizeLimitExceeded && res != nil
		if err != nil && !limited {
			healthy = healthyAfter(err) && ctx.Err() == nil
			return fmt.Errorf("ldap: listing users: %w", err)
		}
		var cookie []byte
		if ctl, ok := goldap.FindControl(res.Controls, goldap.ControlTypePaging).(*goldap.ControlPaging); ok {
			cookie = ctl.Cookie
		}
		stop := false
		for _, ge := range res.Entries {
			d.iter.resolve(toEntry(ge), vc, nil, func(name string, values []string) {
				if stop {
					return
				}
				if name != "user" {
					if !warned[name] {
						warned[name] = true
						d.log.Warn("ldap: iterate: ignoring field not named 'user'", "field", name)
					}
					return
				}
				for _, v := range values {
					listed++
					if !fn(v) {
						stop = true
						return
					}
				}
			})
			if stop {
				break
			}
		}
		if limited && !stop {
			// slapd counts paged results against the identity's size
			// limit (500 by default): the list would be silently cut
			// short, so it is an error, after the users already listed.
			healthy = true
			return fmt.Errorf("ldap: listing users: the server's size limit ended the list after %d users "+
				"(raise it for the service account, e.g. slapd's `limits dn.exact=\"<dn>\" size=unlimited`): %w", listed, err)
		}
		if len(cookie) == 0 {
			healthy = true
			return nil
		}
		if stop || ctx.Err() != nil {
			// RFC 2696 §3: a page size of 0 with the cookie abandons the
			// paged search and frees the server's state.
			paging.PagingSize = 0
			paging.SetCookie(cookie)
			aerr := runOp(ctx, pc.c, d.dial.timeout, func(c *goldap.Conn) error {
				_, err := c.Search(sreq)
				return err
			})
			healthy = healthyAfter(aerr) && ctx.Err() == nil
			return ctx.Err()
		}
		paging.SetCookie(cookie)
	}
}
