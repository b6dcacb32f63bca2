package config

import (
	"fmt"
	"slices"
	"strings"

	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/vars"
)

// drivers24 are Dovecot 2.4's passdb and userdb drivers: a block named
// after one needs no `driver =`.
var drivers24 = []string{"bsdauth", "imap", "ldap", "lua", "oauth2", "pam", "passwd", "passwd-file", "prefetch", "sql", "static"}

// db24 reads a `passdb NAME { }` or `userdb NAME { }` block. Two blocks of
// the same name are one block, as in Dovecot.
func (b *builder) db24(sc *scope24, n *conffile.Node, kind string) {
	if sc != b.s24.root {
		b.errs.add(n.Pos, "%s inside %s { }: authd reads passdb and userdb blocks only at the top level", kind, sc.name)
		return
	}
	name := kind + " " + n.Label
	var db *scope24
	for _, d := range b.s24.dbs {
		if d.name == name {
			db = d
		}
	}
	if db == nil {
		db = newScope24(name, n.Label, n.Pos)
		b.s24.dbs = append(b.s24.dbs, db)
	}
	b.children24(db, filter24{name: kind, label: n.Label, list: true}, n)
}

// sqlHost24 reads `mysql HOST { }` / `pgsql HOST { }`.
func (b *builder) sqlHost24(sc *scope24, n *conffile.Node, kind string) {
	h := newScope24(kind+" "+n.Label, n.Label, n.Pos)
	h.kind = kind
	sc.hosts = append(sc.hosts, h)
	b.children24(h, filter24{name: kind, label: n.Label, list: true}, n)
}

// service24 reads `service auth { }` in 2.4: the unix_listener sections
// as in 2.3 (their keys may carry the unix_listener_ prefix, and a type),
// inet_listener as in 2.3, the service's own settings ignored.
func (b *builder) service24(n *conffile.Node) {
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section && c.Key == "unix_listener":
			b.unixListener(c)
		case c.Section && c.Key == "inet_listener":
			b.inetListener(c) // the client protocol over TCP, as in 2.3
		case c.Section && c.Key == "fifo_listener":
			b.errs.add(c.Pos, "fifo_listener in service auth is not supported")
		case c.Section:
			b.unknownSection(c, "service auth { }", []string{"inet_listener", "unix_listener"})
		default:
			key, ok := resolve24(c.Key, filter24{name: "service", label: "auth", list: true})
			if !ok {
				b.unknown24(c.Pos, c.Key, filter24{name: "service", label: "auth", list: true})
				continue
			}
			b.ignore("service auth/" + key)
		}
	}
}

// view24 answers "what applies to this block": the block's own value, else
// its driver's defaults filter, else the top level's.
type view24 struct {
	scopes []*scope24 // most specific first
}

func (v view24) get(key string) (entry24, bool) {
	for _, s := range v.scopes {
		if e, ok := s.vals[key]; ok {
			return e, true
		}
	}
	return entry24{}, false
}

// list merges a list setting over the scopes, outermost first; a plain
// assignment in a scope drops what the outer ones gave.
func (v view24) list(key string) []entry24 {
	var out list24
	for i := len(v.scopes) - 1; i >= 0; i-- {
		l := v.scopes[i].lists[key]
		if l == nil {
			continue
		}
		if l.replaced {
			out.entries = nil
		}
		for _, e := range l.entries {
			out.set(e.key, e.value, e.pos)
		}
	}
	return out.entries
}

// finish24 turns the scopes into the Config.
func (b *builder) finish24() {
	b.rootAuth24()
	for _, db := range b.s24.dbs {
		b.dbFinish24(db)
	}
	b.checkDriverScopes24()
	b.checkOAuthMechs24()
}

// checkOAuthMechs24 warns about OAUTHBEARER or XOAUTH2 without an oauth2
// passdb. Dovecot 2.4 checks their tokens in the mechanisms, with the top
// level's oauth2 settings, and then only looks the user up in the
// passdbs; authd checks tokens in an oauth2 passdb, so without one every
// token would be compared as a password.
func (b *builder) checkOAuthMechs24() {
	if !slices.ContainsFunc(b.cfg.Auth.Mechanisms, func(m string) bool { return m == "OAUTHBEARER" || m == "XOAUTH2" }) {
		return
	}
	for _, d := range b.cfg.Passdbs {
		if d.Driver == "oauth2" {
			return
		}
	}
	b.warns.add(b.lastPos["auth_mechanisms"], "auth_mechanisms has oauthbearer or xoauth2 but there is no oauth2 passdb: Dovecot 2.4 checks the tokens in the mechanisms with the oauth2 settings, authd in a passdb; add passdb oauth2 { mechanisms_filter = oauthbearer xoauth2 } first, or the tokens are compared as passwords")
}

// driverDefaults24 are the defaults Dovecot 2.4.1 gives per driver
// (`doveconf -d`: passdb_ldap { passdb_default_password_scheme = crypt … }).
var driverDefaults24 = map[string]map[string]string{
	"passdb_ldap":        {"passdb_default_password_scheme": "crypt", "passdb_fields_import_all": "no"},
	"userdb_ldap":        {"userdb_fields_import_all": "no"},
	"passdb_passwd":      {"passdb_default_password_scheme": "crypt"},
	"passdb_passwd_file": {"passdb_default_password_scheme": "CRYPT"},
}

// dbFinish24 builds one DB from its block.
func (b *builder) dbFinish24(sc *scope24) {
	kind, _, _ := strings.Cut(sc.name, " ")
	passdb := kind == "passdb"
	d := newDB(sc.label, sc.pos)
	base := view24{scopes: []*scope24{sc, b.s24.root}}
	d.Driver = sc.label
	if e, ok := base.get(kind + "_driver"); ok && e.value != "" {
		d.Driver = e.value
	}
	if e, ok := base.get(kind + "_name"); ok && e.value != sc.label {
		b.errs.add(e.pos, "%s_name = %s: a block's name is its label (%s %s { })", kind, e.value, kind, sc.label)
	}
	if !slices.Contains(drivers24, d.Driver) {
		b.errs.add(sc.pos, "%s %s has no driver: %q is not a Dovecot 2.4 driver name, so the block needs driver = (one of %s)",
			kind, sc.label, d.Driver, strings.Join(drivers24, ", "))
	}
	dk := kind + "_" + strings.ReplaceAll(d.Driver, "-", "_")
	v := view24{scopes: []*scope24{sc}}
	if ds := b.s24.drivers[dk]; ds != nil {
		v.scopes = append(v.scopes, ds)
	}
	v.scopes = append(v.scopes, b.s24.root)
	get := func(key string) (string, Pos) {
		if e, ok := v.get(key); ok {
			return e.value, e.pos
		}
		if def, ok := driverDefaults24[dk][key]; ok {
			return def, sc.pos
		}
		return dovecot24Defaults[key], sc.pos
	}
	own := func(key string) (entry24, bool) { e, ok := sc.vals[key]; return e, ok }
	b.dbSettings24(&d, kind, passdb, get, own)
	b.dbFields24(&d, kind, v)
	b.dbDriver24(&d, sc, kind, v)
	b.checkDB(&d, &conffile.Node{Pos: sc.pos}, kind)
	b.checkLDAPBind24(d)
	if passdb && d.Driver == "oauth2" {
		b.checkOAuth24(d)
	}
	if passdb {
		b.cfg.Passdbs = append(b.cfg.Passdbs, d)
	} else {
		b.cfg.Userdbs = append(b.cfg.Userdbs, d)
	}
}

// checkLDAPBind24 warns about an LDAP passdb that binds with
// bind_userdn and has no passdb_ldap_filter: authd needs none, but Dovecot
// 2.4.1 fails every login of such a passdb as an internal failure ("No
// passdb_ldap_filter given"), so the file would not work with Dovecot.
func (b *builder) checkLDAPBind24(d DB) {
	if d.Driver != "ldap" {
		return
	}
	s := settingsOf(d.DriverSettings)
	if s["passdb_ldap_bind"] == "yes" && s["passdb_ldap_bind_userdn"] != "" && s["passdb_ldap_filter"] == "" {
		b.warns.add(d.Pos, "passdb %s: bind_userdn without passdb_ldap_filter: authd binds without it, but Dovecot 2.4.1 fails every login of this passdb (\"No passdb_ldap_filter given\"); set a filter to keep the file valid for both", d.Name)
	}
}

// checkOAuth24 reads an oauth2 passdb's settings as the driver will, so
// that a bad value is reported at its file:line when the file loads.
// Dovecot 2.4's oauth2 passdb does a password grant, while its OAUTHBEARER
// and XOAUTH2 mechanisms validate tokens themselves; authd's passdb
// validates the token it is given, so a block that other mechanisms reach
// would send their passwords to the identity provider as tokens.
func (b *builder) checkOAuth24(d DB) {
	s := oauth2.DefaultSettings24()
	bad := false
	for _, x := range d.DriverSettings {
		if err := s.Set24(x.Key, x.Value); err != nil {
			b.errs.add(x.Pos, "%s: %v", x.Key, err)
			bad = true
		}
	}
	if !bad {
		if err := s.Check(); err != nil {
			b.errs.add(d.Pos, "passdb %s: %v", d.Name, err)
		}
	}
	if s.IntrospectionMode == "post" && s.ClientID != "" {
		b.warns.add(d.Pos, "passdb %s: with oauth2_introspection_mode = post, oauth2_client_id and oauth2_client_secret are not sent (Dovecot 2.4.1 posts the token alone): write them in oauth2_introspection_url for HTTP basic auth", d.Name)
	}
	for _, m := range d.Mechanisms {
		if m != "OAUTHBEARER" && m != "XOAUTH2" {
			b.warns.add(d.Pos, "passdb %s: mechanism %s reaches this oauth2 passdb: authd validates its password as a bearer token, where Dovecot 2.4's oauth2 passdb would ask oauth2_grant_url for a password grant; set mechanisms_filter = oauthbearer xoauth2", d.Name, m)
			return
		}
	}
	if d.Mechanisms == nil {
		b.warns.add(d.Pos, "passdb %s: every mechanism reaches this oauth2 passdb: authd validates a password as a bearer token, where Dovecot 2.4's oauth2 passdb would ask oauth2_grant_url for a password grant; set mechanisms_filter = oauthbearer xoauth2", d.Name)
	}
}

// settingsOf maps driver settings by key.
func settingsOf(l []DriverSetting) map[string]string {
	m := map[string]string{}
	for _, s := range l {
		m[s.Key] = s.Value
	}
	return m
}

// dbSettings24 reads the block's own settings (skip, result_*, …).
func (b *builder) dbSettings24(d *DB, kind string, passdb bool, get func(string) (string, Pos), own func(string) (entry24, bool)) {
	at := func(key string) (*conffile.Node, string) {
		v, pos := get(kind + "_" + key)
		return &conffile.Node{Key: key, Pos: pos}, v
	}
	for _, key := range []string{"skip", "result_success", "result_failure", "result_internalfail"} {
		n, v := at(key)
		b.dbSetting(d, n, v, passdb)
	}
	boolSet := func(key string, dst *bool) {
		n, v := at(key)
		x, err := conffile.ParseBool(v)
		if err != nil {
			b.errs.add(n.Pos, "%s_%s: %v", kind, key, err)
			return
		}
		*dst = x
	}
	boolSet("fields_import_all", &d.FieldsImportAll)
	boolSet("use_cache", &d.UseCache)
	boolSet("use_worker", &d.UseWorker)
	if e, ok := own("auth_verbose"); ok {
		x, err := conffile.ParseBool(e.value)
		if err != nil {
			b.errs.add(e.pos, "auth_verbose: %v", err)
		} else if x {
			d.AuthVerbose = VerboseYes
		} else {
			d.AuthVerbose = VerboseNo
		}
	}
	if !passdb {
		return
	}
	boolSet("deny", &d.Deny)
	boolSet("master", &d.Master)
	n, v := at("username_filter")
	b.dbSetting(d, n, v, true)
	n, v = at("default_password_scheme")
	d.DefaultPasswordScheme = strings.ToUpper(v)
	if v == "" {
		b.errs.add(n.Pos, "passdb_default_password_scheme must not be empty")
	}
}

// dbFields24 reads fields { } and the mechanisms filter.
func (b *builder) dbFields24(d *DB, kind string, v view24) {
	provider := strings.ReplaceAll(d.Driver, "-", "_")
	for _, e := range v.list(kind + "_fields") {
		d.Fields = append(d.Fields, Field{Key: e.key, Value: e.value, Pos: e.pos})
		b.template24(e.pos, kind+"_fields/"+e.key, e.value, provider)
		name, _, _ := vars.SplitFieldKey(e.key)
		if name == "" || strings.HasSuffix(e.key, ":protected") {
			b.errs.add(e.pos, "%s: Dovecot 2.4 writes name:default (2.3's :protected) and name:remove", e.key)
		}
	}
	if kind != "passdb" {
		return
	}
	var mechs []string
	for _, e := range v.list("passdb_mechanisms_filter") {
		if e.value == "yes" {
			mechs = append(mechs, e.key)
		}
	}
	if len(mechs) > 0 {
		m, err := parsePassdbMechanisms(strings.Join(mechs, " "))
		if err != nil {
			b.errs.add(v.list("passdb_mechanisms_filter")[0].pos, "passdb_mechanisms_filter: %v", err)
		}
		d.Mechanisms = m
	}
}

// driverKeys24 are the setting families each driver reads; the block gets
// every one of them that applies to it in DriverSettings.
var driverKeys24 = map[string][]string{
	"passwd-file": {"passwd_file_path", "auth_username_format"},
	"ldap":        {"ldap_", "passdb_ldap_", "userdb_ldap_", "ssl_client_"},
	"sql":         {"passdb_sql_", "userdb_sql_"},
	"static":      {"passdb_static_", "userdb_static_"},
	"pam":         {"passdb_pam_"},
	"oauth2":      {"oauth2_", "http_client_", "ssl_client_", "ssl_cipher_list"},
	"lua":         {"lua_file", "lua_settings", "passdb_lua_", "userdb_lua_"},
	"imap":        {"imapc_"},
}

// dbDriver24 collects the driver's settings, the SQL connection, and
// checks the templates among them.
func (b *builder) dbDriver24(d *DB, sc *scope24, kind string, v view24) {
	keys := map[string]entry24{}
	for i := len(v.scopes) - 1; i >= 0; i-- {
		for k, e := range v.scopes[i].vals {
			// The top level's auth_username_format is Auth.UsernameFormat.
			if matches24(k, driverKeys24[d.Driver]) && (k != "auth_username_format" || v.scopes[i] != b.s24.root) {
				keys[k] = e
			}
		}
	}
	for k := range sc.lists {
		if !matches24(k, driverKeys24[d.Driver]) && !dbOwn24(k, kind) && k != kind+"_fields" {
			b.errs.add(sc.lists[k].pos, "%s in %s { }: %s", k, sc.name, notForDriver24(k, d.Driver))
		}
	}
	lists := map[string]bool{}
	for _, s := range v.scopes {
		for k := range s.lists {
			if matches24(k, driverKeys24[d.Driver]) {
				lists[k] = true
			}
		}
	}
	for k := range lists {
		for _, e := range v.list(k) {
			keys[k+"/"+e.key] = e
		}
	}
	for k, e := range sc.vals {
		if !matches24(k, driverKeys24[d.Driver]) && !dbOwn24(k, kind) && k != "auth_verbose" {
			b.errs.add(e.pos, "%s in %s { }: %s", k, sc.name, notForDriver24(k, d.Driver))
		}
	}
	for _, k := range sortedKeys(keys) {
		e := keys[k]
		d.DriverSettings = append(d.DriverSettings, DriverSetting{Key: k, Value: e.value, Pos: e.pos})
		list, _, _ := strings.Cut(k, "/")
		if templates24[k] || templates24[list] {
			b.template24(e.pos, k, e.value, strings.ReplaceAll(d.Driver, "-", "_"))
		}
	}
	if d.Driver == "passwd-file" && keys["passwd_file_path"].value == "" {
		b.errs.add(sc.pos, "%s: passwd_file_path is not set", sc.name)
	}
	if d.Driver == "sql" {
		d.SQL = b.sql24(sc, v)
	}
}

func matches24(key string, families []string) bool {
	for _, f := range families {
		if key == f || strings.HasSuffix(f, "_") && strings.HasPrefix(key, f) {
			return true
		}
	}
	return false
}

// dbOwn24 reports whether key is a passdb/userdb block setting, or one a
// block may hold without it being the driver's (SQL connection settings go
// to the connection).
func dbOwn24(key, kind string) bool {
	return strings.HasPrefix(key, kind+"_") && !strings.Contains(strings.TrimPrefix(key, kind+"_"), "_") ||
		slices.Contains([]string{"fields_import_all", "mechanisms_filter", "username_filter", "default_password_scheme",
			"result_success", "result_failure", "result_internalfail", "use_cache", "use_worker"}, strings.TrimPrefix(key, kind+"_")) ||
		key == "sql_driver" || strings.HasPrefix(key, "mysql_") || strings.HasPrefix(key, "pgsql_") || strings.HasPrefix(key, "sqlite_")
}

func notForDriver24(key, driver string) string {
	if strings.HasPrefix(key, "auth_") {
		return "authd does not support per-block auth settings other than auth_username_format (for passwd-file)"
	}
	return fmt.Sprintf("not a setting of the %s driver", driver)
}

// templates24 are the driver settings that hold templates.
var templates24 = map[string]bool{
	"passwd_file_path": true, "auth_username_format": true, "passdb_static_password": true,
	"passdb_sql_query": true, "passdb_sql_update_query": true, "userdb_sql_query": true, "userdb_sql_iterate_query": true,
	"ldap_base": true, "passdb_ldap_filter": true, "userdb_ldap_filter": true, "userdb_ldap_iterate_filter": true,
	"passdb_ldap_bind_userdn": true, "passdb_pam_service_name": true, "oauth2_username_validation_format": true,
	"userdb_ldap_iterate_fields": true, "oauth2_fields": true,
}

// sql24 builds a block's SQL connection: sql_driver, the host sections of
// the block (or else of the top level), and the driver's settings.
func (b *builder) sql24(sc *scope24, v view24) *SQLConnection {
	c := &SQLConnection{Pos: sc.pos}
	e, ok := v.get("sql_driver")
	c.Driver = e.value
	switch {
	case !ok || e.value == "":
		b.errs.add(sc.pos, "%s: sql_driver is not set (mysql, pgsql or sqlite)", sc.name)
		return c
	case !slices.Contains([]string{"mysql", "pgsql", "sqlite"}, e.value):
		b.errs.add(e.pos, "sql_driver: unknown driver %q (mysql, pgsql or sqlite)", e.value)
		return c
	}
	hosts := sc.hosts
	if len(hosts) == 0 {
		hosts = b.s24.root.hosts
	}
	prefix := c.Driver + "_"
	for _, h := range hosts {
		if h.kind != c.Driver {
			b.errs.add(h.pos, "%s: this block's sql_driver is %s", h.name, c.Driver)
			continue
		}
		host := SQLHost{Host: h.label, Pos: h.pos}
		hv := view24{scopes: append([]*scope24{h}, v.scopes...)}
		host.Settings = b.sqlSettings24(hv, prefix)
		c.Hosts = append(c.Hosts, host)
	}
	c.Settings = b.sqlSettings24(v, "sqlite_")
	switch {
	case c.Driver == "sqlite" && !hasSetting(c.Settings, "sqlite_path"):
		b.errs.add(sc.pos, "%s: sqlite_path is not set", sc.name)
	case c.Driver != "sqlite" && len(c.Hosts) == 0:
		b.errs.add(sc.pos, "%s: sql_driver = %s needs a `%s HOST { }` section", sc.name, c.Driver, c.Driver)
	}
	return c
}

// sqlSettings24 lists the settings starting with prefix that apply.
func (b *builder) sqlSettings24(v view24, prefix string) []DriverSetting {
	seen := map[string]entry24{}
	for i := len(v.scopes) - 1; i >= 0; i-- {
		for k, e := range v.scopes[i].vals {
			if strings.HasPrefix(k, prefix) || prefix != "sqlite_" && strings.HasPrefix(k, "ssl_client_") {
				seen[k] = e
			}
		}
		for k, l := range v.scopes[i].lists {
			if strings.HasPrefix(k, prefix) {
				for _, e := range l.entries {
					seen[k+"/"+e.key] = e
				}
			}
		}
	}
	var out []DriverSetting
	for _, k := range sortedKeys(seen) {
		out = append(out, DriverSetting{Key: k, Value: seen[k].value, Pos: seen[k].pos})
	}
	return out
}

func hasSetting(l []DriverSetting, key string) bool {
	for _, s := range l {
		if s.Key == key && s.Value != "" {
			return true
		}
	}
	return false
}

// checkDriverScopes24 rejects settings in passdb_<driver> filters that no
// block of that driver can use.
func (b *builder) checkDriverScopes24() {
	for _, name := range sortedKeys(b.s24.drivers) {
		ds := b.s24.drivers[name]
		kind, driver, _ := strings.Cut(name, "_")
		for k, e := range ds.vals {
			if !dbOwn24(k, kind) && !matches24(k, driverKeys24[strings.ReplaceAll(driver, "_", "-")]) {
				b.errs.add(e.pos, "%s in %s { }: %s", k, name, notForDriver24(k, driver))
			}
		}
	}
}
