package daemon

import (
	"fmt"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/ldap"
	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/backends/passwdfile"
	sqldb "github.com/authd-project/authd/backends/sql"
	"github.com/authd-project/authd/backends/static"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/internal/vars"
)

// Drivers from a Dovecot 2.4 configuration: the block's settings (by their
// 2.4 names, in config.DB.DriverSettings) instead of 2.3's args. The
// drivers themselves are the same; only how they are configured differs.

// passdbFor builds a passdb from its args (2.3) or its settings (2.4).
func (ds *driverSet) passdbFor(cfg *config.Config, c config.DB) (backends.Passdb, error) {
	if cfg.Syntax == vars.Syntax24 {
		return ds.passdb24(c, cfg.Auth.UsernameFormat)
	}
	return ds.passdb(c)
}

// userdbFor builds a userdb from its args (2.3) or its settings (2.4).
func (ds *driverSet) userdbFor(cfg *config.Config, c config.DB) (backends.Userdb, error) {
	if cfg.Syntax == vars.Syntax24 {
		return ds.userdb24(c, cfg.Auth.UsernameFormat)
	}
	return ds.userdb(c)
}

// setting24 is the value of a driver setting of the block, or "".
func setting24(c config.DB, key string) string {
	for _, s := range c.DriverSettings {
		if s.Key == key {
			return s.Value
		}
	}
	return ""
}

// passdb24 builds a passdb of a 2.4 configuration.
func (ds *driverSet) passdb24(c config.DB, usernameFormat string) (backends.Passdb, error) {
	switch strings.ToLower(c.Driver) {
	case "passwd-file":
		return passdbOf(ds.passwdFile24(c, usernameFormat))
	case "static":
		return passdbOf(static.New24(setting24(c, "passdb_static_password"), false))
	case "sql":
		return passdbOf(ds.sql24(c))
	case "ldap":
		return passdbOf(ds.ldap24(c, true))
	case "oauth2":
		return passdbOf(ds.oauth2v24(c))
	case "pam":
		args, err := pamArgs24(c)
		if err != nil {
			return nil, err
		}
		return ds.passdb(config.DB{Driver: "pam", Args: args})
	}
	return ds.passdb(config.DB{Driver: c.Driver})
}

// userdb24 builds a userdb of a 2.4 configuration.
func (ds *driverSet) userdb24(c config.DB, usernameFormat string) (backends.Userdb, error) {
	switch strings.ToLower(c.Driver) {
	case "passwd-file":
		return userdbOf(ds.passwdFile24(c, usernameFormat))
	case "static":
		return userdbOf(static.New24("", setting24(c, "userdb_static_allow_all_users") == "yes"))
	case "sql":
		return userdbOf(ds.sql24(c))
	case "ldap":
		return userdbOf(ds.ldap24(c, false))
	}
	return ds.userdb(config.DB{Driver: c.Driver})
}

// passwdFile24 shares one driver between the blocks reading the same file
// the same way. The user name looked up is the block's
// auth_username_format (Dovecot 2.4 has no username_format of its own for
// passwd-file).
func (ds *driverSet) passwdFile24(c config.DB, usernameFormat string) (*passwdfile.DB, error) {
	o := passwdfile.Options{
		Path:           setting24(c, "passwd_file_path"),
		UsernameFormat: setting24(c, "auth_username_format"),
		DefaultScheme:  c.DefaultPasswordScheme,
		Syntax:         vars.Syntax24,
	}
	if o.UsernameFormat == "" {
		o.UsernameFormat = usernameFormat
	}
	key := "passwd-file24\x00" + o.Path + "\x00" + o.UsernameFormat + "\x00" + o.DefaultScheme
	if d, ok := ds.built[key]; ok {
		return d.(*passwdfile.DB), nil
	}
	d, err := passwdfile.NewWith(o, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// sql24 turns the block's 2.4 SQL settings into the driver's settings: the
// connection's hosts into a connect string, the queries, the scheme.
func (ds *driverSet) sql24(c config.DB) (*sqldb.DB, error) {
	if c.SQL == nil {
		return nil, fmt.Errorf("no SQL connection")
	}
	s := sqldb.DefaultSettings()
	s.Syntax = vars.Syntax24
	connect, err := connect24(c.SQL)
	if err != nil {
		return nil, err
	}
	set := func(key, value, origin string) error {
		if err := s.Set(key, value, origin); err != nil {
			return fmt.Errorf("%s: %w", origin, err)
		}
		return nil
	}
	if err := set("driver", c.SQL.Driver, c.SQL.Pos.String()); err != nil {
		return nil, err
	}
	if err := set("connect", connect, c.SQL.Pos.String()); err != nil {
		return nil, err
	}
	for _, x := range c.DriverSettings {
		key := map[string]string{
			"passdb_sql_query": "password_query", "passdb_sql_update_query": "update_query",
			"userdb_sql_query": "user_query", "userdb_sql_iterate_query": "iterate_query",
		}[x.Key]
		if key == "" {
			return nil, fmt.Errorf("%s: %s: not an SQL setting authd reads", x.Pos, x.Key)
		}
		if err := set(key, x.Value, x.Pos.String()); err != nil {
			return nil, err
		}
	}
	if c.DefaultPasswordScheme != "" {
		s.DefaultPassScheme = c.DefaultPasswordScheme
	}
	key := fmt.Sprintf("sql24\x00%s\x00%s\x00%s\x00%s\x00%s\x00%s", connect, s.Driver, s.PasswordQuery, s.UserQuery, s.IterateQuery, s.DefaultPassScheme)
	if d, ok := ds.built[key]; ok {
		return d.(*sqldb.DB), nil
	}
	d, err := sqldb.NewFromSettings(s, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// connectKeys24 maps a host section's settings to 2.3 connect words.
var connectKeys24 = map[string]string{
	"mysql_port": "port", "mysql_user": "user", "mysql_password": "password", "mysql_dbname": "dbname",
	"mysql_client_flags": "client_flags", "mysql_connect_timeout": "connect_timeout",
	"mysql_read_timeout": "read_timeout", "mysql_write_timeout": "write_timeout",
	"mysql_option_file": "option_file", "mysql_option_group": "option_group",
	"mysql_connection_limit": "maxconns", "ssl_client_ca_file": "ssl_ca", "ssl_client_ca_dir": "ssl_ca_path",
	"ssl_client_cert_file": "ssl_cert", "ssl_client_key_file": "ssl_key", "ssl_cipher_list": "ssl_cipher",
}

// connect24 builds a 2.3 connect string from the 2.4 connection: the
// host sections' settings as connect words (mysql, pgsql), or sqlite_path.
// A connect string shares every setting but the host among its hosts, so
// hosts with different settings cannot be expressed and are an error.
// Values are never quoted in errors: one is the database password.
func connect24(c *config.SQLConnection) (string, error) {
	if c.Driver == "sqlite" {
		// authd opens the file read-only whatever sqlite_readonly says,
		// and so never writes a journal (sqlite_journal_mode).
		for _, s := range c.Settings {
			if s.Key == "sqlite_path" {
				return s.Value, nil
			}
		}
		return "", fmt.Errorf("%s: sqlite_path is not set", c.Pos)
	}
	var words []string
	var shared string
	for i, h := range c.Hosts {
		ws, err := hostWords24(c.Driver, h)
		if err != nil {
			return "", err
		}
		joined := strings.Join(ws, " ")
		if i > 0 && joined != shared {
			return "", fmt.Errorf("%s: %s %s: authd needs every SQL host to share the same settings", h.Pos, c.Driver, h.Host)
		}
		shared = joined
		words = append(words, "host="+connectValue(h.Host))
	}
	return strings.TrimSpace(strings.Join(words, " ") + " " + shared), nil
}

// hostWords24 turns one host section's settings into connect words.
func hostWords24(driver string, h config.SQLHost) ([]string, error) {
	var ws []string
	for _, s := range h.Settings {
		var w string
		switch {
		case driver == "pgsql" && strings.HasPrefix(s.Key, "pgsql_parameters/"):
			// libpq's own keywords, which a 2.3 connect string holds too.
			w = strings.TrimPrefix(s.Key, "pgsql_parameters/")
		case driver == "pgsql" && s.Key == "pgsql_connection_limit":
			w = "maxconns"
		case driver == "pgsql" && (s.Key == "pgsql_host" || strings.HasPrefix(s.Key, "ssl_client_")):
			continue // the section's name is the host; libpq's TLS is in the parameters
		case s.Key == "mysql_ssl" || s.Key == "ssl_client_require_valid_cert":
			continue // TLS follows from the CA and certificate settings
		default:
			var ok bool
			if w, ok = connectKeys24[s.Key]; !ok {
				if strings.HasPrefix(s.Key, "ssl_client_") {
					continue
				}
				return nil, fmt.Errorf("%s: %s: not a %s setting authd reads", s.Pos, s.Key, driver)
			}
		}
		if s.Value != "" && (s.Value != "0" || driver == "pgsql" && w != "maxconns") {
			ws = append(ws, w+"="+connectValue(s.Value))
		}
	}
	return ws, nil
}

// connectValue quotes a connect-string value that holds a blank or a
// quote, the way the SQL driver's connect parser reads it back.
func connectValue(v string) string {
	if v != "" && !strings.ContainsAny(v, " \t\n\r'\"\\") {
		return v
	}
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

// ldap24 builds an LDAP driver from 2.4 settings. The block's fields { }
// go to the driver, which maps the entry's attributes with them.
func (ds *driverSet) ldap24(c config.DB, passdb bool) (*ldap.DB, error) {
	s := ldap.Settings24{Name: c.Pos.String(), DefaultScheme: c.DefaultPasswordScheme}
	for _, x := range c.DriverSettings {
		if k, ok := strings.CutPrefix(x.Key, "userdb_ldap_iterate_fields/"); ok {
			s.IterateFields = append(s.IterateFields, [2]string{k, x.Value})
			continue
		}
		s.Settings = append(s.Settings, ldap.Setting{Key: x.Key, Value: x.Value, Origin: x.Pos.String()})
	}
	var fields [][2]string
	for _, f := range c.Fields {
		fields = append(fields, [2]string{f.Key, f.Value})
	}
	if passdb {
		s.PassFields = fields
	} else {
		s.UserFields = fields
	}
	return ldap.New24(s, ds.log)
}

// oauth2Settings24 lists a 2.4 oauth2 passdb's settings for the driver.
func oauth2Settings24(c config.DB) []oauth2.Setting24 {
	list := make([]oauth2.Setting24, 0, len(c.DriverSettings))
	for _, x := range c.DriverSettings {
		list = append(list, oauth2.Setting24{Key: x.Key, Value: x.Value, Origin: x.Pos.String()})
	}
	return list
}

// oauth2v24 builds an oauth2 passdb from 2.4 settings, shared between the
// blocks whose settings are the same (as Dovecot's db_oauth2_init compares
// them). Errors without an origin of their own name the block.
func (ds *driverSet) oauth2v24(c config.DB) (*oauth2.DB, error) {
	list := oauth2Settings24(c)
	var key strings.Builder
	key.WriteString("oauth2v24")
	for _, x := range list {
		key.WriteString("\x00" + x.Key + "=" + x.Value)
	}
	if d, ok := ds.built[key.String()]; ok {
		return d.(*oauth2.DB), nil
	}
	s, err := oauth2.FromSettings24(list)
	if err != nil {
		return nil, fmt.Errorf("%s: passdb %s: %w", c.Pos, c.Name, err)
	}
	d, err := oauth2.NewFromSettings(s, ds.log)
	if err != nil {
		return nil, fmt.Errorf("%s: passdb %s: %w", c.Pos, c.Name, err)
	}
	ds.built[key.String()] = d
	return d, nil
}

// pamArgs24 writes the passdb_pam_* settings as 2.3 args.
func pamArgs24(c config.DB) (string, error) {
	var args []string
	for _, k := range []string{"session", "setcred", "failure_show_msg"} {
		if setting24(c, "passdb_pam_"+k) == "yes" {
			args = append(args, k+"=yes")
		}
	}
	if n := setting24(c, "passdb_pam_max_requests"); n != "" {
		args = append(args, "max_requests="+n)
	}
	if svc := setting24(c, "passdb_pam_service_name"); svc != "" {
		if strings.ContainsAny(svc, "% ") {
			return "", fmt.Errorf("passdb_pam_service_name %q: a templated PAM service name is not supported with a Dovecot 2.4 configuration", svc)
		}
		args = append(args, svc)
	}
	return strings.Join(args, " "), nil
}

// dbSpec24 adds a 2.4 block's fields { }: applied after the driver's
// answer like 2.3's override_fields, reading the driver's own fields as
// %{<driver>:name}. An LDAP driver maps its entries with them itself.
func dbSpec24(s engine.DBSpec, c config.DB) (engine.DBSpec, error) {
	if strings.EqualFold(c.Driver, "ldap") {
		return s, nil
	}
	s.FieldsProvider = strings.ReplaceAll(strings.ToLower(c.Driver), "-", "_")
	s.DropDriverFields = !c.FieldsImportAll
	for _, f := range c.Fields {
		ft, err := vars.Syntax24.Field(f.Key, f.Value)
		if err != nil {
			return s, fmt.Errorf("%s: fields: %w", f.Pos, err)
		}
		s.OverrideFields = append(s.OverrideFields, ft)
	}
	return s, nil
}
