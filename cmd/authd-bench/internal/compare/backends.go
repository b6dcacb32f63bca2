package compare

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/authd-project/authd/internal/realserver"
	"github.com/authd-project/authd/schemes"
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
	dbErr   error
	ldapErr error
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
