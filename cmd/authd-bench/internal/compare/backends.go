package compare

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/schemes"

	_ "modernc.org/sqlite" // database/sql driver "sqlite", to write the benchmark's database file
)

// backends are the data every scenario reads: the passwd-files, and a
// private mariadbd and slapd, each started once, on first use, and serving
// every scenario after.
type backends struct {
	work string
	data *Data
	env  env
	say  func(string, ...any)

	db      *realserver.MariaDB
	ldap    *realserver.Slapd
	pg      *realserver.Postgres
	dbErr   error
	ldapErr error
	pgErr   error
	// sqliteDone: the SQLite file is written (sqliteErr if that failed).
	sqliteDone bool
	sqliteErr  error
}

// newBackends writes the passwd-files; the servers start in get.
func newBackends(work string, data *Data, say func(string, ...any)) (*backends, error) {
	b := &backends{work: work, data: data, say: say, env: env{dataDir: filepath.Join(work, "data")}}
	if err := realserver.Mkdirs(b.env.dataDir); err != nil {
		return nil, err
	}
	for _, sch := range []string{"PLAIN", "SHA512-CRYPT"} {
		if err := realserver.WriteFile(filepath.Join(b.env.dataDir, "users-"+sch), data.passwdFile(sch)); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// get starts the backend of kind ("sql", "ldap") if it is not running yet
// and returns its process id; 0 for passwd-file, which has no server. A
// backend that failed to start fails every later get the same way.
func (b *backends) get(ctx context.Context, kind string) (int, error) {
	switch kind {
	case "sql":
		if b.db == nil && b.dbErr == nil {
			b.db, b.dbErr = b.startSQL(ctx)
			if b.dbErr == nil {
				b.say("mariadbd ready, %d rows", len(b.data.Accounts))
			}
		}
		if b.dbErr != nil {
			return 0, b.dbErr
		}
		return b.db.PID(), nil
	case "pgsql":
		if b.pg == nil && b.pgErr == nil {
			b.pg, b.pgErr = b.startPg(ctx)
			if b.pgErr == nil {
				b.say("postgres ready, %d rows", len(b.data.Accounts))
			}
		}
		if b.pgErr != nil {
			return 0, b.pgErr
		}
		return b.pg.PID(), nil
	case "sqlite":
		// No server: the file is read in the auth server's own process
		// (Dovecot's auth-workers, authd).
		if !b.sqliteDone {
			b.sqliteDone, b.sqliteErr = true, b.writeSQLite(ctx)
			if b.sqliteErr == nil {
				b.say("sqlite file ready, %d rows", len(b.data.Accounts))
			}
		}
		return 0, b.sqliteErr
	case "ldap":
		if b.ldap == nil && b.ldapErr == nil {
			b.ldap, b.ldapErr = b.startLDAP(ctx)
			if b.ldapErr == nil {
				b.say("slapd ready, %d entries", len(b.data.Accounts))
			}
		}
		if b.ldapErr != nil {
			return 0, b.ldapErr
		}
		return b.ldap.PID(), nil
	}
	return 0, nil
}

// stop stops the servers that were started.
func (b *backends) stop() {
	if b.db != nil {
		b.db.Close()
	}
	if b.ldap != nil {
		b.ldap.Stop()
	}
	if b.pg != nil {
		b.pg.Close()
	}
}

// startSQL starts mariadbd, loads the users table and writes the sql
// driver's config files (the same file for both servers).
func (b *backends) startSQL(ctx context.Context) (*realserver.MariaDB, error) {
	dir := filepath.Join(b.work, "mariadb")
	m, err := realserver.StartMariaDB(ctx, realserver.MariaDBOptions{
		Instance: instance(dir), Database: "mail",
		// The table and its index stay in memory, and both servers'
		// connection pools (Dovecot's auth-workers, authd's maxconns) fit.
		BufferPoolSize: "64M", MaxConnections: 500,
	})
	if err != nil {
		return nil, err
	}
	if err := b.loadSQL(ctx, m, dir); err != nil {
		m.Close()
		return nil, err
	}
	b.env.sqlSock, b.env.sqlUser, b.env.sqlPassword = m.Socket, m.User, m.Password
	for _, sch := range []string{"PLAIN", "SHA512-CRYPT"} {
		if err := realserver.WriteFile(filepath.Join(b.env.dataDir, "sql-"+sch+".conf.ext"), []byte(sqlConf(b.env, sch))); err != nil {
			m.Close()
			return nil, err
		}
	}
	return m, nil
}

// loadSQL creates the users table and bulk-loads every account.
func (b *backends) loadSQL(ctx context.Context, m *realserver.MariaDB, dir string) error {
	rows := filepath.Join(dir, "users.tsv")
	if err := realserver.WriteFile(rows, b.data.sqlRows()); err != nil {
		return err
	}
	sql := fmt.Sprintf(`SET GLOBAL local_infile=1;
CREATE TABLE %[1]s.users (username VARCHAR(255) PRIMARY KEY, password_plain VARCHAR(255),
  password_crypt VARCHAR(255), uid INT, gid INT, home VARCHAR(255));
LOAD DATA LOCAL INFILE '%[2]s' INTO TABLE %[1]s.users (username, password_plain, password_crypt, uid, gid, home);
SELECT COUNT(*) FROM %[1]s.users;
`, m.Database, rows)
	out, err := m.Exec(ctx, sql)
	if err != nil {
		return err
	}
	if got := strings.TrimSpace(out); got != fmt.Sprint(len(b.data.Accounts)) {
		return fmt.Errorf("mariadb: loaded %s rows, want %d", got, len(b.data.Accounts))
	}
	return nil
}

// startPg starts a PostgreSQL cluster, loads the users table with COPY
// and writes the pgsql config files.
func (b *backends) startPg(ctx context.Context) (*realserver.Postgres, error) {
	dir := filepath.Join(b.work, "postgres")
	p, err := realserver.StartPostgres(ctx, realserver.PostgresOptions{
		Instance: instance(dir), Database: "mail", MaxConnections: 300, SharedBuffers: "128MB",
	})
	if err != nil {
		return nil, err
	}
	rows := filepath.Join(dir, "users.tsv")
	if err := realserver.WriteFile(rows, b.data.sqlRows()); err != nil {
		p.Close()
		return nil, err
	}
	out, err := p.Exec(ctx, fmt.Sprintf(`CREATE TABLE users (username text PRIMARY KEY, password_plain text,
  password_crypt text, uid int, gid int, home text);
COPY users FROM '%s';
ANALYZE users;
SELECT COUNT(*) FROM users;
`, rows))
	if err == nil && strings.TrimSpace(out) != fmt.Sprint(len(b.data.Accounts)) {
		err = fmt.Errorf("postgres: loaded %s rows, want %d", strings.TrimSpace(out), len(b.data.Accounts))
	}
	if err != nil {
		p.Close()
		return nil, err
	}
	b.env.pgSockDir, b.env.pgPort, b.env.pgUser = p.SocketDir, p.Port, p.User
	if err := realserver.WriteFile(filepath.Join(b.env.dataDir, "pgsql-PLAIN.conf.ext"), []byte(pgConf(b.env, "PLAIN"))); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// writeSQLite writes the users table into a SQLite file (modernc's
// driver, one transaction) and the sqlite config files.
func (b *backends) writeSQLite(ctx context.Context) error {
	path := filepath.Join(b.env.dataDir, "users.db")
	db, err := stdsql.Open("sqlite", path)
	if err != nil {
		return err
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE users (username TEXT PRIMARY KEY, password_plain TEXT,
  password_crypt TEXT, uid INTEGER, gid INTEGER, home TEXT)`); err != nil {
		return err
	}
	for i, a := range b.data.Accounts {
		if _, err := tx.ExecContext(ctx, "INSERT INTO users VALUES (?, ?, ?, ?, ?, ?)", a.Name, "{PLAIN}"+a.Password,
			"{SHA512-CRYPT}"+a.SHA512Crypt, 10000+i+1, 10000+i+1, "/var/empty/"+a.Name); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return err
	}
	if err := os.Chmod(path, 0o644); err != nil {
		return err
	}
	b.env.sqliteFile = path
	return realserver.WriteFile(filepath.Join(b.env.dataDir, "sqlite-PLAIN.conf.ext"), []byte(sqliteConf(b.env, "PLAIN")))
}

// startLDAP starts slapd with every account loaded and writes the ldap
// driver's config files (search then verify, and auth_bind).
func (b *backends) startLDAP(ctx context.Context) (*realserver.Slapd, error) {
	svc, err := schemes.Generate("SSHA", []byte("svcpw"), "", 0)
	if err != nil {
		return nil, err
	}
	s, err := realserver.StartSlapd(ctx, realserver.SlapdOptions{
		Instance: instance(filepath.Join(b.work, "slapd")),
		LDIF:     string(b.data.ldif(svc)),
		// 10,000 users and more: a larger map than the tests' default.
		MaxSize: 1 << 30,
	})
	if err != nil {
		return nil, err
	}
	b.env.ldapURI = s.URI
	for name, bind := range map[string]bool{"ldap.conf.ext": false, "ldap-bind.conf.ext": true} {
		if err := realserver.WriteFile(filepath.Join(b.env.dataDir, name), []byte(ldapConf(b.env, bind))); err != nil {
			s.Stop()
			return nil, err
		}
	}
	return s, nil
}
