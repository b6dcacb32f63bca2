package convert

import (
	"strings"

	sqldb "github.com/authd-project/authd/backends/sql"
	"github.com/authd-project/authd/internal/config"
)

// mysqlKeys24 maps MySQL connect words to 2.4 settings of a `mysql HOST { }`.
var mysqlKeys24 = map[string]string{
	"port": "mysql_port", "user": "mysql_user", "password": "mysql_password", "dbname": "mysql_dbname",
	"client_flags": "mysql_client_flags", "connect_timeout": "mysql_connect_timeout",
	"read_timeout": "mysql_read_timeout", "write_timeout": "mysql_write_timeout",
	"option_file": "mysql_option_file", "option_group": "mysql_option_group", "maxconns": "mysql_connection_limit",
	"ssl_ca": "ssl_client_ca_file", "ssl_ca_path": "ssl_client_ca_dir", "ssl_cert": "ssl_client_cert_file",
	"ssl_key": "ssl_client_key_file",
}

// sqlSettings reads the block's SQL settings as authd does: the args
// file, then the settings written inline in the block.
func (b *block) sqlSettings() (sqldb.Settings, bool) {
	s := sqldb.DefaultSettings()
	if b.src.Args != "" {
		var err error
		if s, err = sqldb.ParseFile(b.src.Args); err != nil {
			b.cv.problem(b.at, "%v", err)
			return s, false
		}
	}
	for _, x := range b.src.DriverSettings {
		k := x.Key
		if k == "sql_driver" {
			k = "driver"
		}
		if err := s.Set(k, x.Value, x.Pos.String()); err != nil {
			b.cv.problem(x.Pos.String(), "%v", err)
			return s, false
		}
	}
	if s.Driver == "" {
		s.Driver = "mysql"
	}
	return s, true
}

// sql: the connection, the scheme and the block's queries.
func (b *block) sql() {
	s, ok := b.sqlSettings()
	if !ok {
		return
	}
	at := func(key string) string {
		if o := s.Origin[key]; o != "" {
			return o
		}
		return b.at
	}
	b.out.SQL = b.sqlConnection(s, at("connect"))
	b.out.DefaultPasswordScheme = s.DefaultPassScheme
	if b.kind == "passdb" && s.Origin["default_pass_scheme"] == "" {
		b.cv.note(b.path("default_password_scheme"), "Dovecot 2.3's default for SQL (%s), written out: 2.4's default is PLAIN", s.DefaultPassScheme)
	}
	if s.PoolSize > 0 {
		b.cv.problem(at("pool_size"), "pool_size (authd's own) has no Dovecot 2.4 equivalent: write the host's connection_limit")
	}
	queries := []struct{ key23, key24, src, def string }{
		{"password_query", "passdb_sql_query", s.PasswordQuery, sqldb.DefaultPasswordQuery},
		{"update_query", "passdb_sql_update_query", s.UpdateQuery, sqldb.DefaultUpdateQuery},
	}
	if b.kind == "userdb" {
		queries = []struct{ key23, key24, src, def string }{
			{"user_query", "userdb_sql_query", s.UserQuery, sqldb.DefaultUserQuery},
			{"iterate_query", "userdb_sql_iterate_query", s.IterateQuery, sqldb.DefaultIterateQuery},
		}
	}
	for _, q := range queries {
		if q.key23 == "update_query" && s.Origin[q.key23] == "" {
			continue // authd never runs it
		}
		b.set(q.key24, b.cv.tmpl(b.path(q.key24), at(q.key23), q.src))
		if s.Origin[q.key23] == "" {
			b.cv.note(b.path(q.key24), "Dovecot 2.3's default %s, written out: 2.4 has none", q.key23)
		}
	}
}

// sqlConnection turns driver and connect into sql_driver and its
// sections: sqlite_path, or one `mysql HOST { }` / `pgsql HOST { }` per
// host= with the other connect words as the host's settings.
func (b *block) sqlConnection(s sqldb.Settings, at string) *config.SQLConnection {
	c := &config.SQLConnection{Driver: s.Driver, Pos: b.src.Pos}
	if s.Driver == "sqlite" {
		c.Settings = []config.DriverSetting{{Key: "sqlite_path", Value: strings.TrimSpace(s.Connect), Pos: b.src.Pos}}
		return c
	}
	words, err := sqldb.ConnectWords(s.Connect)
	if err != nil {
		b.cv.problem(at, "%v", err)
		return c
	}
	var hosts []string
	var settings []config.DriverSetting
	for _, w := range words {
		key, ok := connectKey24(s.Driver, w[0])
		switch {
		case w[0] == "host" || w[0] == "hostaddr":
			hosts = append(hosts, w[1])
		case !ok:
			b.cv.problem(at, "connect: %s= has no Dovecot 2.4 equivalent for %s", w[0], s.Driver)
		default:
			settings = append(settings, config.DriverSetting{Key: key, Value: w[1], Pos: b.src.Pos})
		}
	}
	if len(hosts) == 0 && s.Driver == "mysql" {
		// libmysqlclient's default: the local server's socket.
		hosts = []string{"localhost"}
		b.cv.note(b.path("mysql localhost"), "connect had no host=: MySQL's default, localhost (the local socket)")
	}
	if len(hosts) == 0 {
		b.cv.problem(at, "connect has no host=: Dovecot 2.4 names each host in a %s HOST { } section", s.Driver)
	}
	for _, h := range hosts {
		c.Hosts = append(c.Hosts, config.SQLHost{Host: h, Settings: settings, Pos: b.src.Pos})
	}
	return c
}

// connectKey24 is the 2.4 setting of a connect word.
func connectKey24(driver, word string) (string, bool) {
	if driver == "pgsql" {
		if word == "maxconns" {
			return "pgsql_connection_limit", true
		}
		return "pgsql_parameters/" + word, true // libpq's keywords, as in 2.3
	}
	k, ok := mysqlKeys24[word]
	return k, ok
}
