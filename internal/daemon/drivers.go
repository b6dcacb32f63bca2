package daemon

import (
	"fmt"
	"log/slog"
	"slices"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/checkpassword"
	"github.com/authd-project/authd/backends/ldap"
	"github.com/authd-project/authd/backends/oauth2"
	"github.com/authd-project/authd/backends/pam"
	"github.com/authd-project/authd/backends/passwd"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/backends/prefetch"
	"github.com/authd-project/authd/backends/shadow"
	sqldb "github.com/authd-project/authd/backends/sql"
	"github.com/authd-project/authd/backends/static"
	"github.com/authd-project/authd/internal/config"
)

// The explicit driver maps (docs/architecture.md, house rule 5): every passdb and
// userdb driver authd has, and nothing registers itself.
//
// A driver built from the same driver name and args is shared between the
// passdb and the userdb side, so one passwd-file is parsed once.

type driverSet struct {
	log   *slog.Logger
	built map[string]any
	// userdbCount is how many userdbs the configuration has: a prefetch
	// userdb alone fails a lookup without prefetched fields.
	userdbCount int
}

func newDriverSet(log *slog.Logger) *driverSet {
	return &driverSet{log: log, built: map[string]any{}}
}

var passdbDrivers = map[string]func(ds *driverSet, c config.DB) (backends.Passdb, error){
	"passwd-file": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(ds.passwdFile(c.Args))
	},
	"static": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(static.New(c.Args))
	},
	"ldap": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(ds.ldap(c.Args))
	},
	"sql": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(ds.sql(c))
	},
	"pam": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(pam.New(c.Args, ds.log))
	},
	"shadow": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(shadow.New(c.Args, ds.log))
	},
	"oauth2": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(ds.oauth2(c.Args))
	},
	"checkpassword": func(ds *driverSet, c config.DB) (backends.Passdb, error) {
		return passdbOf(ds.checkpassword(c.Args))
	},
}

var userdbDrivers = map[string]func(ds *driverSet, c config.DB) (backends.Userdb, error){
	"passwd-file": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(ds.passwdFile(c.Args))
	},
	"static": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(static.New(c.Args))
	},
	"prefetch": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return prefetch.DB{Only: ds.userdbCount == 1}, nil
	},
	"passwd": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(passwd.New(c.Args))
	},
	"ldap": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(ds.ldap(c.Args))
	},
	"sql": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(ds.sql(c))
	},
	"checkpassword": func(ds *driverSet, c config.DB) (backends.Userdb, error) {
		return userdbOf(ds.checkpassword(c.Args))
	},
}

// passdbOf and userdbOf return a constructor's driver as the interface, or
// nil with its error: never a nil pointer inside a non-nil interface.
func passdbOf[T backends.Passdb](db T, err error) (backends.Passdb, error) {
	if err != nil {
		return nil, err
	}
	return db, nil
}

func userdbOf[T backends.Userdb](db T, err error) (backends.Userdb, error) {
	if err != nil {
		return nil, err
	}
	return db, nil
}

func (ds *driverSet) passwdFile(args string) (*passwdfile.DB, error) {
	key := "passwd-file\x00" + args
	if d, ok := ds.built[key]; ok {
		return d.(*passwdfile.DB), nil
	}
	d, err := passwdfile.New(args, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// ldap shares one driver (and its connection pools) between a passdb and
// a userdb with the same conf file, as Dovecot shares its LDAP connection.
func (ds *driverSet) ldap(args string) (*ldap.DB, error) {
	key := "ldap\x00" + args
	if d, ok := ds.built[key]; ok {
		return d.(*ldap.DB), nil
	}
	d, err := ldap.New(args, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// oauth2 shares one driver (its HTTP connections and JWT keys) between
// passdbs reading the same file, as Dovecot's db_oauth2_init does.
func (ds *driverSet) oauth2(args string) (*oauth2.DB, error) {
	key := "oauth2\x00" + args
	if d, ok := ds.built[key]; ok {
		return d.(*oauth2.DB), nil
	}
	d, err := oauth2.New(args, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// checkpassword shares one driver (and its bound on running children)
// between a passdb and a userdb running the same program.
func (ds *driverSet) checkpassword(args string) (*checkpassword.DB, error) {
	key := "checkpassword\x00" + args
	if d, ok := ds.built[key]; ok {
		return d.(*checkpassword.DB), nil
	}
	d, err := checkpassword.New(args, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

// sql shares one driver (and its connection pools) between a passdb and a
// userdb reading the same dovecot-sql.conf.ext. Settings written inline
// in the block apply on top of the args file (or of Dovecot's defaults
// when there is none).
func (ds *driverSet) sql(c config.DB) (*sqldb.DB, error) {
	key := "sql\x00" + c.Args
	for _, x := range c.DriverSettings {
		key += "\x00" + x.Key + "=" + x.Value
	}
	if d, ok := ds.built[key]; ok {
		return d.(*sqldb.DB), nil
	}
	var d *sqldb.DB
	var err error
	if len(c.DriverSettings) == 0 {
		d, err = sqldb.New(c.Args, ds.log)
	} else {
		s := sqldb.DefaultSettings()
		if c.Args != "" {
			if s, err = sqldb.ParseFile(c.Args); err != nil {
				return nil, err
			}
		}
		if s.Driver == "" {
			s.Driver = "mysql" // inline settings without sql_driver: MySQL, as before pgsql and sqlite existed
		}
		for _, x := range c.DriverSettings {
			k := x.Key
			if k == "sql_driver" {
				k = "driver"
			}
			if err := s.Set(k, x.Value, x.Pos.String()); err != nil {
				return nil, fmt.Errorf("%s: %w", x.Pos, err)
			}
		}
		d, err = sqldb.NewFromSettings(s, ds.log)
	}
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

func (ds *driverSet) passdb(c config.DB) (backends.Passdb, error) {
	f, ok := passdbDrivers[strings.ToLower(c.Driver)]
	if !ok {
		return nil, fmt.Errorf("unknown passdb driver %q (known: %s)", c.Driver, knownDrivers(passdbDrivers))
	}
	return f(ds, c)
}

func (ds *driverSet) userdb(c config.DB) (backends.Userdb, error) {
	f, ok := userdbDrivers[strings.ToLower(c.Driver)]
	if !ok {
		return nil, fmt.Errorf("unknown userdb driver %q (known: %s)", c.Driver, knownDrivers(userdbDrivers))
	}
	return f(ds, c)
}

func knownDrivers[V any](m map[string]V) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}
