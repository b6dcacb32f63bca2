package config

import (
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
)

// Reading Dovecot 2.4's configuration language (chosen by
// dovecot_config_version, see load). 2.4 has one flat namespace of
// settings; a section is a filter that scopes the settings inside it, and
// a key inside a filter is looked up the way Dovecot's config parser does:
// in `passdb NAME { key }` as passdb_NAME_key, passdb_key, then key, so
// `passdb ldap { filter = … }` sets passdb_ldap_filter and `passdb x {
// passwd_file_path = … }` sets passwd_file_path for that passdb only. A
// setting outside any block applies to every block that does not set it.
//
// The builder collects every assignment into scopes (the top level, each
// passdb/userdb block, the passdb_<driver> filters, SQL host sections)
// and then computes what applies where, filling the same Config the 2.3
// reader fills.

type section24Kind uint8

const (
	section24Named   section24Kind = iota + 1 // `name { }`: a named filter
	section24List                             // `name label { }`: a named list filter
	section24Strlist                          // `name { key = value }`: a list setting
)

// entry24 is one value given to a setting, or one entry of a list setting.
type entry24 struct {
	key, value string
	pos        Pos
}

// list24 is a list setting's entries in order; replaced records a plain
// `key = a b c` that drops what outer scopes gave.
type list24 struct {
	entries  []entry24
	replaced bool
	pos      Pos
}

func (l *list24) set(key, value string, pos Pos) {
	for i := range l.entries {
		if l.entries[i].key == key {
			l.entries[i] = entry24{key, value, pos}
			return
		}
	}
	l.entries = append(l.entries, entry24{key, value, pos})
}

// scope24 is what one filter sets.
type scope24 struct {
	name  string // "passdb NAME", "userdb NAME", "passdb_ldap", "mysql HOST", ""
	label string
	pos   Pos
	vals  map[string]entry24
	lists map[string]*list24
	hosts []*scope24 // mysql/pgsql HOST sections, in order
	kind  string     // for hosts: mysql or pgsql
}

func newScope24(name, label string, pos Pos) *scope24 {
	return &scope24{name: name, label: label, pos: pos, vals: map[string]entry24{}, lists: map[string]*list24{}}
}

func (s *scope24) list(key string, pos Pos) *list24 {
	l := s.lists[key]
	if l == nil {
		l = &list24{pos: pos}
		s.lists[key] = l
	}
	return l
}

// state24 is the builder's 2.4 bookkeeping.
type state24 struct {
	root    *scope24
	dbs     []*scope24          // passdb and userdb blocks in order (name "passdb x")
	drivers map[string]*scope24 // passdb_<driver> / userdb_<driver> filters
	policy  map[string]entry24  // auth_policy { } settings authd reads
	oauth2  map[string]*scope24 // oauth2 { } per scope
}

// filter24 is where a key is being resolved: the innermost filter's name
// and label, and whether it is a list filter.
type filter24 struct {
	name, label string
	list        bool
}

// known24 reports whether name is a Dovecot 2.4 setting or one of authd's.
func known24(name string) bool {
	_, ok := dovecot24Defaults[name]
	return ok || authdOwnSettings[name]
}

// resolve24 finds the setting a key names inside filter f, as Dovecot's
// config parser does (config_apply_line_full): <filter>_<label>_<key> for
// a list filter, <filter>_<key>, then <key> itself.
func resolve24(key string, f filter24) (string, bool) {
	if f.name != "" {
		if f.list {
			if k := f.name + "_" + f.label + "_" + key; known24(k) && dovecot24Sections[k] != section24Named {
				return k, true
			}
		}
		if k := f.name + "_" + key; known24(k) && dovecot24Sections[k] != section24Named {
			return k, true
		}
	}
	return key, known24(key)
}

// resolveSection24 finds what a section header names inside filter f:
// a filter or a list setting, with the same prefixing as keys.
func resolveSection24(key string, f filter24) (string, section24Kind) {
	var cands []string
	if f.name != "" {
		if f.list {
			cands = append(cands, f.name+"_"+f.label+"_"+key)
		}
		cands = append(cands, f.name+"_"+key)
	}
	cands = append(cands, key)
	for _, c := range cands {
		if k := sectionKind24(c); k != 0 {
			return c, k
		}
	}
	return key, 0
}

func sectionKind24(name string) section24Kind {
	switch name {
	case "protocol", "local", "remote", "local_name":
		return section24List // event filters: they need a label
	case "grpc", "metrics", "penalty", "hash_budget", "redis":
		return section24Named // authd's own
	}
	return dovecot24Sections[name]
}

// value24 resolves a node's value in a 2.4 file: `$SET:name` and
// `$ENV:NAME` words in an unquoted value, `<file` as in 2.3.
func (b *builder) value24(n *conffile.Node, readFile bool) (string, bool) {
	if n.Kind != conffile.ValueVariable {
		return b.value(n, readFile)
	}
	words := strings.Split(n.Value, " ")
	for i, w := range words {
		switch {
		case strings.HasPrefix(w, "$SET:"):
			v, ok := b.lookup24(w[len("$SET:"):])
			if !ok {
				b.errs.add(n.Pos, "%s: unknown setting %s", n.Key, w)
				return "", false
			}
			words[i] = v
		case strings.HasPrefix(w, "$ENV:"):
			words[i] = os.Getenv(w[len("$ENV:"):])
		case strings.HasPrefix(w, "$") && (known24(w[1:]) || hasKey(dovecotRootDefaults, w[1:])):
			b.errs.add(n.Pos, "%s: %s is Dovecot 2.3's way to refer to a setting (2.4 keeps it as text); write $SET:%s", n.Key, w, w[1:])
			return "", false
		}
	}
	return strings.Join(words, " "), true
}

// lookup24 answers $SET:name: the value at this point of the file, else
// the default.
func (b *builder) lookup24(name string) (string, bool) {
	if e, ok := b.s24.root.vals[name]; ok {
		return e.value, true
	}
	if v, ok := authdDefaults[name]; ok {
		return v, true
	}
	v, ok := dovecot24Defaults[name]
	return v, ok
}

// build24 reads a Dovecot 2.4 configuration tree.
func (b *builder) build24(root *conffile.Node) {
	s := &b.s24
	s.root = newScope24("", "", Pos{})
	s.drivers = map[string]*scope24{}
	s.policy = map[string]entry24{}
	s.oauth2 = map[string]*scope24{}
	first := true
	for _, n := range root.Children {
		if n.IsInclude() {
			continue
		}
		if first && !n.Section && n.Key == conffile.ConfigVersionKey {
			first = false
			continue // load checked it
		}
		first = false
		b.node24(s.root, filter24{}, n)
	}
	b.finish24()
	b.finish()
}

// node24 handles one line inside scope sc, whose innermost filter is f.
func (b *builder) node24(sc *scope24, f filter24, n *conffile.Node) {
	switch {
	case n.IsInclude():
	case n.Group:
		b.group24(n)
	case n.Section:
		b.section24(sc, f, n)
	case strings.HasPrefix(n.Key, "@"):
		// `@group = label` includes a group's settings here.
		b.ignore("group include " + n.Key)
	default:
		b.setting24(sc, f, n)
	}
}

// setting24 handles `key = value`.
func (b *builder) setting24(sc *scope24, f filter24, n *conffile.Node) {
	key, ok := resolve24(n.Key, f)
	switch {
	case key == conffile.ConfigVersionKey:
		if n.Value != b.cfg.ConfigVersion {
			b.errs.add(n.Pos, "dovecot_config_version can't be changed once set (it is %s)", b.cfg.ConfigVersion)
		}
		return
	case !ok:
		b.unknown24(n.Pos, n.Key, f)
		return
	case dovecot24Sections[key] == section24Strlist && isAuth24(key):
		v, ok := b.value24(n, true)
		if ok {
			b.listValue24(sc, key, v, n)
		}
		return
	case !isAuth24(key) && !(f.name == "oauth2" && oauth2Client24(key)):
		b.ignore(key)
		return
	}
	v, ok := b.value24(n, true)
	if !ok {
		return
	}
	sc.vals[key] = entry24{key: key, value: v, pos: n.Pos}
	if sc == b.s24.root {
		b.vals[key] = v
	}
}

// listValue24 handles `list = a b c`: a boolean list (auth_mechanisms)
// is replaced by the words; another list setting cannot be written so.
func (b *builder) listValue24(sc *scope24, key, v string, n *conffile.Node) {
	if !boolLists24[key] {
		if v == "" {
			l := sc.list(key, n.Pos)
			l.entries, l.replaced = nil, true
			return
		}
		b.errs.add(n.Pos, "%s is a list of key = value pairs: write %s { key = value }", n.Key, n.Key)
		return
	}
	l := sc.list(key, n.Pos)
	l.entries, l.replaced = nil, true
	for _, w := range splitList(v, " \t,") {
		l.set(w, "yes", n.Pos)
	}
}

// boolLists24 are the boolean list settings authd reads (a list of names,
// each on or off).
var boolLists24 = map[string]bool{
	"auth_mechanisms": true, "auth_realms": true, "passdb_mechanisms_filter": true,
	"ldap_auth_sasl_mechanisms": true, "oauth2_scope": true, "oauth2_issuers": true, "oauth2_audience": true,
}

// oauth2Client24 reports whether key is an HTTP or TLS client setting,
// which authd's oauth2 passdb reads when it is written in oauth2 { }
// (where Dovecot 2.4 documents them; the top level's are ignored).
func oauth2Client24(key string) bool {
	return strings.HasPrefix(key, "http_client_") || strings.HasPrefix(key, "ssl_client_") || key == "ssl_cipher_list"
}

// isAuth24 reports whether a 2.4 setting is one authd reads (the others
// belong to Dovecot's other services and are ignored).
func isAuth24(key string) bool {
	switch key {
	case "auth_socket_path", "auth_proxy_self", "auth_use_winbind", "auth_winbind_helper_path",
		"auth_gssapi_hostname", "auth_krb5_keytab":
		return false
	case "base_dir", "default_login_user", "first_valid_uid", "last_valid_uid",
		"first_valid_gid", "last_valid_gid", "passwd_file_path", "lua_file", "lua_settings":
		return true
	}
	if authdOwnSettings[key] {
		return true
	}
	for _, p := range []string{"auth_", "passdb_", "userdb_", "ldap_", "sql_", "mysql_", "pgsql_", "sqlite_", "oauth2_"} {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// unknown24 reports a key Dovecot 2.4 does not know, naming the 2.4
// counterpart of a 2.3 setting.
func (b *builder) unknown24(pos Pos, key string, f filter24) {
	where := ""
	if f.name != "" {
		where = strings.TrimSpace(f.name + " " + f.label)
	}
	if hint := counterpart23(key, f); hint != "" {
		msg := fmt.Sprintf("%q is Dovecot 2.3's; in this 2.4 configuration %s", key, hint)
		if where != "" {
			msg = fmt.Sprintf("%s (in %s { })", msg, where)
		}
		b.errs.add(pos, "%s", msg)
		return
	}
	cands := make([]string, 0, len(dovecot24Defaults))
	for k := range dovecot24Defaults {
		cands = append(cands, k)
	}
	sort.Strings(cands)
	if where != "" {
		where += " { }"
	}
	b.unknown(pos, key, where, cands)
}

// group24 checks a `group @name label { }` definition. Its settings apply
// where `@name = label` includes them; authd ignores groups, so a group
// holding auth settings is an error rather than silently dropped.
func (b *builder) group24(n *conffile.Node) {
	var walk func(n *conffile.Node)
	walk = func(n *conffile.Node) {
		for _, c := range n.Children {
			switch {
			case c.IsInclude():
			case c.Section && (c.Key == "passdb" || c.Key == "userdb"):
				b.errs.add(c.Pos, "%s inside group %s: authd does not support auth settings in groups", c.Key, n.Key)
			case c.Section:
				walk(c)
			case isAuth24(c.Key):
				b.errs.add(c.Pos, "%s inside group %s: authd does not support auth settings in groups", c.Key, n.Key)
			}
		}
	}
	walk(n)
	b.ignore("group " + n.Key + " " + n.Label)
}

// section24 handles a section header inside scope sc.
func (b *builder) section24(sc *scope24, f filter24, n *conffile.Node) {
	name, kind := resolveSection24(n.Key, f)
	switch {
	case n.Key == "oauth2_local_validation" || f.name == "oauth2" && n.Key == "local_validation":
		// A 2.4 section that doveconf's table does not list as one.
		b.errs.add(n.Pos, "%s { }: JWT validation keys from a dict (oauth2_introspection_mode = local) are not supported by authd in a Dovecot 2.4 configuration; a 2.3 oauth2 args file's local_validation_key_dict is", n.Key)
	case kind == 0:
		b.unknownSection24(n, f)
	case kind == section24List && n.Label == "" && !n.Quoted:
		b.errs.add(n.Pos, "%s { } is missing its name (Dovecot 2.4 writes %s NAME { })", n.Key, n.Key)
	case kind != section24List && (n.Label != "" || n.Quoted):
		b.errs.add(n.Pos, "%s { } must not have a name", n.Key)
	case name == "passdb" || name == "userdb":
		b.db24(sc, n, name)
	case name == "mysql" || name == "pgsql":
		b.sqlHost24(sc, n, name)
	case kind == section24Strlist:
		b.list24(sc, f, name, n)
	default:
		b.filter24Section(sc, f, name, n)
	}
}

func (b *builder) unknownSection24(n *conffile.Node, f filter24) {
	if hint := counterpart23(n.Key, f); hint != "" {
		b.errs.add(n.Pos, "section %q is Dovecot 2.3's; in this 2.4 configuration %s", n.Key, hint)
		return
	}
	cands := []string{}
	for k := range dovecot24Sections {
		cands = append(cands, k)
	}
	sort.Strings(cands)
	msg := fmt.Sprintf("unknown section %q", n.Key)
	if s := suggest(n.Key, cands); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	b.errs.add(n.Pos, "%s", msg)
}

// list24 reads a list setting written as a section: `fields { k = v }`,
// `auth_mechanisms { login = yes }`.
func (b *builder) list24(sc *scope24, f filter24, key string, n *conffile.Node) {
	if !isAuth24(key) {
		b.ignore(key)
		return
	}
	l := sc.list(key, n.Pos)
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in %s { }", c.Key, n.Key)
		default:
			v, ok := b.value24(c, true)
			if !ok {
				continue
			}
			if boolLists24[key] {
				on, err := conffile.ParseBool(v)
				if err != nil {
					b.errs.add(c.Pos, "%s: %v", c.Key, err)
					continue
				}
				v = yesNo(on)
			}
			l.set(c.Key, v, c.Pos)
		}
	}
}

// filter24Section handles the named filters: authd's own sections, the
// passdb_<driver> defaults filters, oauth2 { }, auth_policy { }, service
// auth, the event filters (protocol …) and the filters of Dovecot's other
// services.
func (b *builder) filter24Section(sc *scope24, f filter24, name string, n *conffile.Node) {
	top := sc == b.s24.root && f.name == ""
	switch {
	case top && name == "grpc":
		b.grpc(n)
	case top && name == "metrics":
		b.metrics(n)
	case top && name == "penalty":
		b.penalty(n)
	case top && name == "hash_budget":
		b.hashBudget(n)
	case top && name == "redis":
		b.redis(n)
	case top && driverFilter24(name):
		ds := b.s24.drivers[name]
		if ds == nil {
			ds = newScope24(name, "", n.Pos)
			b.s24.drivers[name] = ds
		}
		b.children24(ds, filter24{name: name}, n)
	case name == "oauth2":
		b.children24(sc, filter24{name: "oauth2"}, n)
	case name == "auth_policy":
		b.authPolicy24(n)
	case name == "service" && n.Label == "auth" && top:
		b.service24(n)
	case name == "protocol" || name == "local" || name == "remote" || name == "local_name":
		b.eventFilter24(n)
	default:
		b.ignored24(n, filter24{name: name, label: n.Label, list: sectionKind24(name) == section24List})
		b.ignore(strings.TrimSpace(n.Key + " " + n.Label))
	}
}

// driverFilter24 reports whether name is a passdb_<driver>/userdb_<driver>
// filter of defaults.
func driverFilter24(name string) bool {
	for _, p := range []string{"passdb_", "userdb_"} {
		if d, ok := strings.CutPrefix(name, p); ok && slices.Contains(drivers24, strings.ReplaceAll(d, "_", "-")) {
			return true
		}
	}
	return false
}

// children24 reads a filter's lines into scope sc.
func (b *builder) children24(sc *scope24, f filter24, n *conffile.Node) {
	for _, c := range n.Children {
		b.node24(sc, f, c)
	}
}

// ignored24 checks a filter of Dovecot's other services: every key and
// section in it must be a 2.4 name, and auth settings there would silently
// not apply, so they are errors.
func (b *builder) ignored24(n *conffile.Node, f filter24) {
	for _, c := range n.Children {
		switch {
		case c.IsInclude() || strings.HasPrefix(c.Key, "@"):
		case c.Group:
			b.group24(c)
		case c.Section:
			name, kind := resolveSection24(c.Key, f)
			switch {
			case kind == 0:
				b.unknownSection24(c, f)
			case name == "passdb" || name == "userdb":
				b.errs.add(c.Pos, "%s inside %s { }: authd reads passdb and userdb blocks only at the top level", c.Key, n.Key)
			case kind != section24Strlist:
				b.ignored24(c, filter24{name: name, label: c.Label, list: kind == section24List})
			}
		default:
			key, ok := resolve24(c.Key, f)
			switch {
			case !ok:
				b.unknown24(c.Pos, c.Key, f)
			case isAuth24(key) && key != "passdb_name" && key != "userdb_name":
				b.errs.add(c.Pos, "%s inside %s { }: authd reads auth settings only at the top level and in passdb/userdb blocks", c.Key, strings.TrimSpace(n.Key+" "+n.Label))
			}
		}
	}
}

// eventFilter24 handles protocol/local/remote/local_name filters: other
// services' settings, ignored. Auth settings there would be per-protocol
// auth, which authd does not have, except auth_username_format in a
// protocol filter (Debian 13's stock 20-lmtp.conf sets one for LMTP).
func (b *builder) eventFilter24(n *conffile.Node) {
	rest := &conffile.Node{Key: n.Key, Label: n.Label, Section: true, Pos: n.Pos}
	for _, c := range n.Children {
		if n.Key != "protocol" || c.Section || c.Key != "auth_username_format" {
			rest.Children = append(rest.Children, c)
			continue
		}
		v, ok := b.value24(c, true)
		if !ok {
			continue
		}
		b.template24(c.Pos, "auth_username_format", v, "")
		if b.cfg.Auth.ProtocolUsernameFormat == nil {
			b.cfg.Auth.ProtocolUsernameFormat = map[string]string{}
		}
		b.cfg.Auth.ProtocolUsernameFormat[n.Label] = v
	}
	b.ignored24(rest, filter24{})
	b.ignore(n.Name())
}

// authPolicy24 reads the auth_policy { } filter: authd takes the request
// timeout from it (2.3's auth_policy_server_timeout_msecs).
func (b *builder) authPolicy24(n *conffile.Node) {
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			if c.Key == "request_attributes" {
				b.list24(b.s24.root, filter24{}, "auth_policy_request_attributes", c)
				continue
			}
			b.errs.add(c.Pos, "section %q is not allowed in auth_policy { }", c.Key)
		default:
			key, ok := resolve24(c.Key, filter24{name: "auth_policy"})
			if !ok {
				b.unknown24(c.Pos, c.Key, filter24{name: "auth_policy"})
				continue
			}
			if v, ok := b.value24(c, true); ok {
				b.s24.policy[key] = entry24{key: key, value: v, pos: c.Pos}
			}
		}
	}
}
