package config

import (
	"fmt"
	"net"
	"slices"
	"sort"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/schemes"
)

type builder struct {
	v24       bool    // the file is Dovecot 2.4's (see build24.go)
	s24       state24 // 2.4's scopes
	cfg       *Config
	opts      conffile.Options
	main      string
	errs      ErrorList
	warns     ErrorList
	ignored   map[string]bool
	vals      map[string]string // current value of each top-level setting, for $name
	lastPos   map[string]Pos    // where each authd setting was last set
	listeners map[string]*Listener
	lorder    []string
	inet      []inetPending // inet_listener blocks, given addresses at the end (inet.go)
	files     []string      // files read for `<file` values
	suggested int           // "did you mean" lookups made so far
}

// maxSuggestions bounds the edit-distance work a file full of garbage can
// cause; nobody reads past the first few suggestions anyway.
const maxSuggestions = 50

func newBuilder(o conffile.Options, main string) *builder {
	b := &builder{
		cfg:       &Config{GRPC: DefaultGRPC(), Penalty: defaultPenalty(), HashBudget: schemes.DefaultLimits()},
		opts:      o,
		main:      main,
		ignored:   map[string]bool{},
		vals:      map[string]string{},
		lastPos:   map[string]Pos{},
		listeners: map[string]*Listener{},
	}
	for name, set := range authdSettings {
		v, _ := defaultValue(name)
		if err := set(b.cfg, v); err != nil {
			panic(fmt.Sprintf("config: bad default %s = %q: %v", name, v, err))
		}
	}
	for _, l := range defaultListeners() {
		b.listeners[l.Name] = l
		b.lorder = append(b.lorder, l.Name)
	}
	return b
}

func (b *builder) ignore(name string) { b.ignored[name] = true }

func (b *builder) build(root *conffile.Node) {
	for _, n := range root.Children {
		switch {
		case n.IsInclude():
		case n.Section:
			b.rootSection(n)
		default:
			b.rootSetting(n)
		}
	}
	b.finish()
}

// lookup answers a `$name` reference: the value the setting has at this
// point of the file, else its default.
func (b *builder) lookup(name string) (string, bool) {
	if v, ok := b.vals[name]; ok {
		return v, true
	}
	return defaultValue(name)
}

// value resolves a node's value. `<file` is read only when readFile is set:
// the files of settings authd ignores (ssl_key = </etc/ssl/...) may not
// exist or be readable here. The file's trailing newlines are dropped
// (Dovecot keeps them; for the settings authd reads, a trailing newline is
// never meant).
func (b *builder) value(n *conffile.Node, readFile bool) (string, bool) {
	switch n.Kind {
	case conffile.ValueVariable:
		v, err := conffile.ExpandVariables(n.Value, b.lookup)
		if err != nil {
			b.errs.add(n.Pos, "%s: %v", n.Key, err)
			return "", false
		}
		return v, true
	case conffile.ValueFile:
		if !readFile {
			return "", true
		}
		if n.Value == "" {
			b.errs.add(n.Pos, "%s: missing file name after '<'", n.Key)
			return "", false
		}
		path := conffile.Resolve(n.Pos.File, n.Value)
		data, err := b.opts.ReadFile(path)
		if err != nil {
			b.errs.add(n.Pos, "%s: can't read %s: %s", n.Key, path, conffile.ErrorText(err))
			return "", false
		}
		b.files = appendUnique(b.files, path)
		return strings.TrimRight(string(data), "\r\n"), true
	}
	return n.Value, true
}

func (b *builder) rootSetting(n *conffile.Node) {
	name := n.Key
	if set, ok := authdSettings[name]; ok {
		v, ok := b.value(n, true)
		if !ok {
			return
		}
		if name == "auth_cache_size" && n.Kind == conffile.ValuePlain {
			// Dovecot 1.x took auth_cache_size in megabytes; 2.3 still
			// reads a bare number below 1024 that way, with a warning.
			if k, err := conffile.ParseUint32(v); err == nil && k > 0 && k < 1024 {
				b.warns.add(n.Pos, "auth_cache_size = %s is read as %sM (obsolete megabyte syntax; write %sM)", v, v, v)
				v += "M"
			}
		}
		if err := set(b.cfg, v); err != nil {
			b.errs.add(n.Pos, "%s: %v", name, err)
			return
		}
		b.vals[name] = v
		b.lastPos[name] = n.Pos
		if name == "auth_username_translation" && len(v)%2 == 1 {
			b.warns.add(n.Pos, "auth_username_translation has an odd number of characters; the last one is ignored")
		}
		return
	}
	if _, ok := dovecotRootDefaults[name]; ok {
		v, ok := b.value(n, false)
		if !ok {
			return
		}
		b.vals[name] = v
		b.ignore(name)
		b.checkIgnoredAuth(name, v, n)
		if name == "disable_plaintext_auth" {
			// Kept (inverted) for authd convert: 2.4's auth_allow_cleartext.
			if x, err := conffile.ParseBool(v); err == nil {
				b.cfg.Auth.AllowCleartext = !x
			}
		}
		return
	}
	if isObsolete(name) {
		b.warns.add(n.Pos, "%s is an obsolete Dovecot setting; ignored", name)
		b.ignore(name)
		return
	}
	b.unknown(n.Pos, name, "", rootCandidates())
}

// checkIgnoredAuth rejects the Dovecot auth features that authd does not
// implement where ignoring them would silently weaken or change behaviour.
func (b *builder) checkIgnoredAuth(name, v string, n *conffile.Node) {
	switch name {
	case "auth_proxy_self":
		// Addresses or names (resolved when authd starts) that count as
		// this server for proxy_maybe.
		b.cfg.Auth.ProxySelf = splitList(v, " \t")
		delete(b.ignored, name)
	case "auth_use_winbind":
		if ok, _ := conffile.ParseBool(v); ok {
			b.warns.add(n.Pos, "auth_use_winbind: authd has no NTLM/GSS-SPNEGO mechanisms; ignored")
		}
	}
}

func (b *builder) unknown(pos Pos, name, where string, candidates []string) {
	msg := fmt.Sprintf("unknown setting %q", name)
	if where != "" {
		msg += " in " + where
	}
	if !b.v24 {
		if name == conffile.ConfigVersionKey {
			b.errs.add(pos, "dovecot_config_version must be the first setting of the main file (it selects Dovecot 2.4's language)")
			return
		}
		if h := counterpart24(name); h != "" {
			b.errs.add(pos, "%s: %s", msg, h)
			return
		}
	}
	b.suggested++
	if b.suggested > maxSuggestions {
		b.errs.add(pos, "%s", msg)
		return
	}
	if s := suggest(name, candidates); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	b.errs.add(pos, "%s", msg)
}

func (b *builder) rootSection(n *conffile.Node) {
	switch {
	case n.Key == "passdb":
		b.db(n, true)
	case n.Key == "userdb":
		b.db(n, false)
	case n.Key == "service":
		b.service(n)
	case n.Key == "grpc":
		b.grpc(n)
	case n.Key == "metrics":
		b.metrics(n)
	case n.Key == "penalty":
		b.penalty(n)
	case n.Key == "redis":
		b.redis(n)
	case n.Key == "hash_budget":
		b.hashBudget(n)
	case filterSections[n.Key]:
		b.filter(n, filterScope{})
	case ignoredSections[n.Key]:
		b.checkSection(n, n.Key)
		b.ignore(n.Name())
	case n.Key == "auth":
		b.errs.add(n.Pos, "the Dovecot 1.x auth { } section is not supported: write auth_* settings, passdb { } and userdb { } at the top level")
	default:
		b.unknownSection(n, "", rootSectionCandidates())
	}
}

func (b *builder) unknownSection(n *conffile.Node, where string, candidates []string) {
	msg := fmt.Sprintf("unknown section %q", n.Key)
	if where != "" {
		msg += " in " + where
	}
	if s := suggest(n.Key, candidates); s != "" {
		msg += fmt.Sprintf(" (did you mean %q?)", s)
	}
	b.errs.add(n.Pos, "%s", msg)
}

// checkSection validates a section authd ignores against the keys Dovecot
// accepts there, so that a typo in, say, service imap-login { } is still
// reported as Dovecot would report it.
func (b *builder) checkSection(n *conffile.Node, typ string) {
	keys := dovecotSectionKeys[typ]
	free := freeFormSections[typ]
	where := typ + " { }"
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			if free || !keys[c.Key] || dovecotSectionKeys[c.Key] == nil {
				b.errs.add(c.Pos, "section %q is not allowed in %s", c.Key, where)
				continue
			}
			b.checkSection(c, c.Key)
		case free:
		case !keys[c.Key] || dovecotSectionKeys[c.Key] != nil:
			b.unknown(c.Pos, c.Key, where, sortedKeys(keys))
		}
	}
}

// filterScope records which filters enclose a section, for Dovecot's
// nesting rules.
type filterScope struct{ protocol, local, remote, localName bool }

// filter handles protocol/local/remote/local_name blocks. Their settings
// apply to Dovecot's other processes (or, for protocol, to a per-protocol
// Dovecot auth instance authd does not have), so authd ignores them; but an
// auth setting there would silently not apply, so it is an error, as Dovecot
// itself makes it one inside local/remote.
func (b *builder) filter(n *conffile.Node, scope filterScope) {
	var nestErr string
	switch n.Key {
	case "protocol":
		if scope.protocol {
			nestErr = "nested protocol { protocol { } } is not allowed"
		}
		scope.protocol = true
	case "local":
		switch {
		case scope.remote:
			nestErr = "remote { local { } } is not allowed (use local { remote { } })"
		case scope.protocol:
			nestErr = "protocol { local { } } is not allowed (use local { protocol { } })"
		case scope.localName:
			nestErr = "local_name { local { } } is not allowed (use local { local_name { } })"
		}
		scope.local = true
	case "local_name":
		switch {
		case scope.remote:
			nestErr = "remote { local_name { } } is not allowed (use local_name { remote { } })"
		case scope.protocol:
			nestErr = "protocol { local_name { } } is not allowed (use local_name { protocol { } })"
		}
		scope.localName = true
	case "remote":
		if scope.protocol {
			nestErr = "protocol { remote { } } is not allowed (use remote { protocol { } })"
		}
		scope.remote = true
	}
	if nestErr != "" {
		b.errs.add(n.Pos, "%s", nestErr)
		return
	}
	if n.Label == "" {
		b.errs.add(n.Pos, "%s { } needs a name, e.g. %s", n.Key, map[string]string{
			"protocol": "protocol imap { }", "local": "local 192.0.2.1 { }",
			"remote": "remote 192.0.2.0/24 { }", "local_name": "local_name mail.example.com { }",
		}[n.Key])
		return
	}
	b.ignore(n.Name())
	where := n.Name() + " { }"
	authErr := func(c *conffile.Node) {
		if scope.local || scope.remote || scope.localName {
			// Dovecot itself rejects these.
			b.errs.add(c.Pos, "%s inside %s: auth settings are not supported inside local/remote blocks", c.Key, where)
		} else {
			b.errs.add(c.Pos, "%s inside %s: authd does not support per-protocol auth settings; move it to the top level", c.Key, where)
		}
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case !c.Section:
			switch {
			case authdSettings[c.Key] != nil && (strings.HasPrefix(c.Key, "auth_") || authdOwnSettings[c.Key]):
				authErr(c)
			case hasKey(dovecotRootDefaults, c.Key) || isObsolete(c.Key):
			default:
				b.unknown(c.Pos, c.Key, where, rootCandidates())
			}
		case c.Key == "passdb" || c.Key == "userdb":
			authErr(c)
		case filterSections[c.Key]:
			b.filter(c, scope)
		case c.Key == "service":
			if c.Label == "" {
				b.errs.add(c.Pos, "service { } needs a name")
				continue
			}
			b.checkSection(c, "service")
		case ignoredSections[c.Key]:
			b.checkSection(c, c.Key)
		case c.Key == "grpc" || c.Key == "metrics" || c.Key == "penalty" || c.Key == "hash_budget" || c.Key == "redis":
			b.errs.add(c.Pos, "%s { } is not allowed inside %s", c.Key, where)
		default:
			b.unknownSection(c, where, rootSectionCandidates())
		}
	}
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// service handles `service NAME { }`: service auth is authd's; the others
// belong to Dovecot's other processes and are checked and ignored.
func (b *builder) service(n *conffile.Node) {
	switch n.Label {
	case "":
		b.errs.add(n.Pos, "service { } needs a name, e.g. service auth { }")
		return
	case "auth":
	default:
		b.checkSection(n, "service")
		b.ignore(n.Name())
		return
	}
	svcKeys := dovecotSectionKeys["service"]
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section && c.Key == "unix_listener":
			b.unixListener(c)
		case c.Section && c.Key == "inet_listener":
			b.inetListener(c)
		case c.Section && c.Key == "fifo_listener":
			b.errs.add(c.Pos, "fifo_listener in service auth is not supported")
		case c.Section:
			b.unknownSection(c, "service auth { }", []string{"inet_listener", "unix_listener"})
		case svcKeys[c.Key] && dovecotSectionKeys[c.Key] == nil:
			// Process settings (user, client_limit, process_limit …)
			// are for Dovecot's master process.
			b.ignore("service auth/" + c.Key)
		default:
			b.unknown(c.Pos, c.Key, "service auth { }", sortedKeys(svcKeys))
		}
	}
}

// unixListener merges a `unix_listener NAME { }` block into the listener of
// that name (a default one or an earlier block), as Dovecot does.
func (b *builder) unixListener(n *conffile.Node) {
	if n.Label == "" {
		b.errs.add(n.Pos, "unix_listener needs a name: the socket path, absolute or relative to base_dir")
		return
	}
	l := b.listeners[n.Label]
	if l == nil {
		l = &Listener{Name: n.Label, Mode: 0o600} // Dovecot's file_listener default mode
		b.listeners[n.Label] = l
		b.lorder = append(b.lorder, n.Label)
	}
	if l.Pos == (Pos{}) {
		l.Pos = n.Pos
	}
	for _, c := range n.Children {
		if c.IsInclude() {
			continue
		}
		if c.Section {
			b.errs.add(c.Pos, "section %q is not allowed in unix_listener { }", c.Key)
			continue
		}
		v, ok := b.value(c, true)
		key := c.Key
		if b.v24 {
			v, ok = b.value24(c, true)
			key = strings.TrimPrefix(key, "unix_listener_")
		}
		if !ok {
			continue
		}
		switch key {
		case "type":
			if !b.v24 {
				b.unknown(c.Pos, c.Key, "unix_listener { }", []string{"group", "mode", "path", "trusted", "user"})
				continue
			}
			if _, ok := roleFromType(v); !ok {
				b.errs.add(c.Pos, "type: %q is not a listener type authd serves (auth, login, master or userdb)", v)
				continue
			}
			l.Type = v
		case "mode":
			m, err := conffile.ParseOctal(v)
			if err != nil {
				b.errs.add(c.Pos, "mode: %v", err)
				continue
			}
			if m > 0o777 {
				b.errs.add(c.Pos, "mode: %s is %#o, which is not a permission mode (Dovecot reads a mode without a leading 0 as decimal; write e.g. 0666)", v, m)
				continue
			}
			if m != 0 && !strings.HasPrefix(v, "0") {
				b.warns.add(c.Pos, "mode %s has no leading 0 and is read as decimal (%#o), as Dovecot does", v, m)
			}
			l.Mode = fsMode(m)
		case "user":
			l.User = v
		case "group":
			l.Group = v
		case "path":
			if v == "" {
				b.errs.add(c.Pos, "path must not be empty")
				continue
			}
			l.Name = v
		case "trusted":
			x, err := conffile.ParseBool(v)
			if err != nil {
				b.errs.add(c.Pos, "trusted: %v", err)
				continue
			}
			l.Trusted = x
		default:
			b.unknown(c.Pos, c.Key, "unix_listener { }", []string{"group", "mode", "path", "trusted", "user"})
		}
	}
}

var passdbOnly = map[string]bool{"mechanisms": true, "username_filter": true, "deny": true, "pass": true, "master": true}

// sqlInline are the dovecot-sql.conf.ext settings a passdb/userdb block
// with driver = sql may carry inline (Dovecot 2.4 puts them there too);
// sql_driver is the file's `driver` (mysql, pgsql or sqlite).
var sqlInline = []string{"connect", "default_pass_scheme", "iterate_query", "password_query", "sql_driver", "user_query"}

// dbKeys are the settings of every passdb and userdb block; passdbOnly
// adds the passdb's own.
var dbKeys = []string{"args", "auth_verbose", "default_fields", "driver", "name", "override_fields", "result_failure", "result_internalfail", "result_success", "skip"}

// db parses a passdb { } or userdb { } block with Dovecot 2.3's keys and
// checks (auth-settings.c, auth.c).
func (b *builder) db(n *conffile.Node, passdb bool) {
	kind := "userdb"
	keys := dbKeys
	if passdb {
		kind = "passdb"
		keys = append(slices.Clone(dbKeys), "deny", "master", "mechanisms", "pass", "username_filter")
	}
	d := newDB(n.Label, n.Pos)
	where := kind + " { }"
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section && c.Key == "fields":
			b.errs.add(c.Pos, "section %q is not allowed in %s: %s", c.Key, where, counterpart24("fields"))
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in %s", c.Key, where)
		case contains(sqlInline, c.Key):
			if v, ok := b.value(c, true); ok {
				d.DriverSettings = append(d.DriverSettings, DriverSetting{Key: c.Key, Value: v, Pos: c.Pos})
			}
		case passdbOnly[c.Key] && !passdb || !contains(keys, c.Key):
			b.unknown(c.Pos, c.Key, where, append(keys, sqlInline...))
		default:
			if v, ok := b.value(c, true); ok {
				b.dbSetting(&d, c, v, passdb)
			}
		}
	}
	b.checkDB(&d, n, kind)
	if passdb {
		b.cfg.Passdbs = append(b.cfg.Passdbs, d)
	} else {
		b.cfg.Userdbs = append(b.cfg.Userdbs, d)
	}
}

// dbSetting applies one setting of a passdb or userdb block.
func (b *builder) dbSetting(d *DB, c *conffile.Node, v string, passdb bool) {
	switch c.Key {
	case "name":
		d.Name = v
	case "driver":
		d.Driver = v
	case "args":
		d.Args = v
	case "default_fields":
		d.DefaultFields = v
	case "override_fields":
		d.OverrideFields = v
	case "skip":
		allowed := []int{int(SkipNever), int(SkipFound), int(SkipNotFound)}
		if passdb {
			allowed = []int{int(SkipNever), int(SkipAuthenticated), int(SkipUnauthenticated)}
		}
		if i := b.enum(c, v, skipNames, allowed...); i >= 0 {
			d.Skip = Skip(i)
		}
	case "result_success", "result_failure", "result_internalfail":
		if i := b.enum(c, v, ruleNames, 0, 1, 2, 3, 4, 5); i >= 0 {
			*map[string]*Rule{"result_success": &d.ResultSuccess, "result_failure": &d.ResultFailure,
				"result_internalfail": &d.ResultInternalfail}[c.Key] = Rule(i)
		}
	case "auth_verbose":
		if i := b.enum(c, v, verbosityNames, 0, 1, 2); i >= 0 {
			d.AuthVerbose = Verbosity(i)
		}
	case "mechanisms":
		m, err := parsePassdbMechanisms(v)
		if err != nil {
			b.errs.add(c.Pos, "mechanisms: %v", err)
			return
		}
		d.Mechanisms = m
	case "username_filter":
		if f := strings.FieldsFunc(v, func(r rune) bool { return r == ' ' || r == '\t' || r == ',' }); len(f) > 0 {
			d.UsernameFilter = f
		}
	case "deny", "pass", "master":
		x, err := conffile.ParseBool(v)
		if err != nil {
			b.errs.add(c.Pos, "%s: %v", c.Key, err)
			return
		}
		*map[string]*bool{"deny": &d.Deny, "pass": &d.Pass, "master": &d.Master}[c.Key] = x
	}
}

// enum finds v among names[allowed…], reporting an error and returning -1
// when it is not there.
func (b *builder) enum(c *conffile.Node, v string, names []string, allowed ...int) int {
	var list []string
	for _, i := range allowed {
		if names[i] == v {
			return i
		}
		list = append(list, names[i])
	}
	b.errs.add(c.Pos, "%s: invalid value %q (use %s)", c.Key, v, strings.Join(list, ", "))
	return -1
}

func isDriverName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// checkDB applies the block-level checks once every setting is read.
func (b *builder) checkDB(d *DB, n *conffile.Node, kind string) {
	switch {
	case d.Driver == "":
		b.errs.add(n.Pos, "%s is missing driver", kind)
	case !isDriverName(d.Driver):
		// Checked here, not only by the daemon's driver table: the
		// printed configuration must load back (authd check).
		b.errs.add(n.Pos, "%s: driver %q is not a driver name (letters, digits, - and _)", kind, d.Driver)
	}
	if !b.v24 && len(d.DriverSettings) > 0 && d.Driver != "" && !strings.EqualFold(d.Driver, "sql") {
		for _, ds := range d.DriverSettings {
			b.errs.add(ds.Pos, "%s: only a driver = sql %s takes this setting", ds.Key, kind)
		}
	}
	if d.Pass {
		if d.ResultSuccess != RuleReturnOK {
			b.errs.add(n.Pos, "obsolete pass=yes mixed with non-default result_success")
		}
		// Dovecot keeps pass=yes only as result_success=continue.
		d.ResultSuccess = RuleContinue
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (b *builder) metrics(n *conffile.Node) {
	if n.Label != "" {
		b.errs.add(n.Pos, "metrics { } takes no name")
	}
	if b.cfg.Metrics.Pos == (Pos{}) {
		b.cfg.Metrics.Pos = n.Pos
	}
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
		case c.Section:
			b.errs.add(c.Pos, "section %q is not allowed in metrics { }", c.Key)
		case c.Key != "listen":
			b.unknown(c.Pos, c.Key, "metrics { }", []string{"listen"})
		default:
			v, ok := b.value(c, true)
			if !ok {
				continue
			}
			if v != "" {
				if err := checkListen(v); err != nil {
					b.errs.add(c.Pos, "listen: %v", err)
					continue
				}
			}
			b.cfg.Metrics.Listen = v
		}
	}
}

// checkListen accepts host:port or unix:/absolute/path (also
// unix:///path, gRPC's own spelling).
func checkListen(v string) error {
	if p, ok := strings.CutPrefix(v, "unix:"); ok {
		if !strings.HasPrefix(strings.TrimPrefix(p, "//"), "/") {
			return fmt.Errorf("%q: a unix socket needs an absolute path (unix:/run/authd/grpc.sock)", v)
		}
		return nil
	}
	return checkHostPort(v)
}

func checkHostPort(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not host:port", v)
	}
	if _, err := conffile.ParseUint32(port); err != nil || len(port) > 5 {
		return fmt.Errorf("%q has an invalid port", v)
	}
	return nil
}

func isLoopback(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// finish applies the checks that need the whole file.
func (b *builder) finish() {
	c := b.cfg
	a := &c.Auth
	mainPos := Pos{File: b.main}
	at := func(name string) Pos {
		if p, ok := b.lastPos[name]; ok {
			return p
		}
		return mainPos
	}

	// Dovecot: debug_passwords implies debug, debug implies verbose.
	if a.DebugPasswords {
		a.Debug = true
	}
	if a.Debug {
		a.Verbose = true
	}
	if contains(a.Mechanisms, "ANONYMOUS") && a.AnonymousUsername == "" {
		b.errs.add(at("auth_mechanisms"), "ANONYMOUS is listed in auth_mechanisms, but auth_anonymous_username is empty")
	}
	if a.CacheSize > 0 && a.CacheSize < 1024 {
		b.errs.add(at("auth_cache_size"), "auth_cache_size value is too small (%d bytes)", a.CacheSize)
	}

	// passdb chain checks, as Dovecot's auth_preinit makes them.
	var normal, lastNormal = 0, -1
	for i, d := range c.Passdbs {
		if !d.Master {
			normal++
			lastNormal = i
		}
	}
	if normal == 0 && !onlyAnonymous(a.Mechanisms) {
		b.errs.add(mainPos, "no passdb configured: add a passdb { driver = … } block")
	}
	if lastNormal >= 0 && c.Passdbs[lastNormal].Pass {
		b.errs.add(c.Passdbs[lastNormal].Pos, "the last passdb can't have pass=yes")
	}
	for _, d := range c.Passdbs {
		if !d.Master {
			continue
		}
		if d.Deny {
			b.errs.add(d.Pos, "a master passdb can't have deny=yes")
		}
		if d.Pass && normal == 0 {
			b.errs.add(d.Pos, "a master passdb can't have pass=yes if there are no other passdbs")
		}
	}
	if len(c.Userdbs) == 0 {
		// Dovecot runs with a dummy static userdb when none is set.
		def := newDB("", conffile.Pos{})
		def.Driver = "static"
		c.Userdbs = []DB{def}
	}

	b.finishPolicy(at)
	b.finishGRPC()
	b.finishListeners()
	b.finishInetListeners()

	c.Ignored = make([]string, 0, len(b.ignored))
	for k := range b.ignored {
		c.Ignored = append(c.Ignored, k)
	}
	sort.Strings(c.Ignored)
}

func onlyAnonymous(mechs []string) bool {
	for _, m := range mechs {
		if m != "ANONYMOUS" {
			return false
		}
	}
	return len(mechs) > 0
}

// finishPolicy makes the checks Dovecot's auth settings make when a policy
// server is set (auth-settings.c), each at the line of the setting at fault.
func (b *builder) finishPolicy(at func(string) Pos) {
	p := &b.cfg.Auth.Policy
	if p.URL == "" {
		return
	}
	if p.Nonce == "" {
		b.errs.add(at("auth_policy_server_url"), "auth_policy_hash_nonce must be set when auth_policy_server_url is set (and be the same on every server the policy server hears from)")
	}
	bits, ok := policy.HashBits(p.HashMech)
	switch {
	case !ok:
		b.errs.add(at("auth_policy_hash_mech"), "auth_policy_hash_mech: unknown hash %q (md4, md5, sha1, sha256, sha384, sha512, sha3-256, sha3-512 or size)", p.HashMech)
	case p.HashTruncate >= bits:
		b.errs.add(at("auth_policy_hash_truncate"), "auth_policy_hash_truncate is not smaller than the digest size (%d >= %d)", p.HashTruncate, bits)
	}
}

func (b *builder) finishListeners() {
	byPath := map[string]*Listener{}
	for _, key := range b.lorder {
		l := b.listeners[key]
		role, ok := RoleFromName(l.Name)
		if l.Type != "" {
			role, ok = roleFromType(l.Type)
		}
		if !ok {
			b.warns.add(l.Pos, "unix_listener %s: Dovecot's token sockets are not supported by authd; skipped", l.Name)
			continue
		}
		l.Role = role
		l.Path = listenerPath(b.cfg.BaseDir, l.Name)
		if prev := byPath[l.Path]; prev != nil {
			pos := l.Pos
			if pos == (Pos{}) {
				pos = prev.Pos
			}
			b.errs.add(pos, "unix_listener %s: socket path %s is already used by unix_listener %s", l.Name, l.Path, prev.Name)
			continue
		}
		byPath[l.Path] = l
		b.cfg.Listeners = append(b.cfg.Listeners, *l)
	}
}
