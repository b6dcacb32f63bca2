package main

import (
	"fmt"
	"log/slog"
	"strings"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/backends/ldap"
	"github.com/authd-project/authd/backends/pam"
	"github.com/authd-project/authd/backends/passwd"
	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/backends/prefetch"
	"github.com/authd-project/authd/backends/shadow"
	sqldb "github.com/authd-project/authd/backends/sql"
	"github.com/authd-project/authd/backends/static"
)

// The explicit driver maps (design.md house rule 5): every passdb and
// userdb driver authd has, and nothing registers itself.
//
// A driver built from the same driver name and args is shared between the
// passdb and the userdb side, so one passwd-file is parsed once.

type driverSet struct {
	log   *slog.Logger
	built map[string]any
}

func newDriverSet(log *slog.Logger) *driverSet {
	return &driverSet{log: log, built: map[string]any{}}
}

var passdbDrivers = map[string]func(ds *driverSet, args string) (backends.Passdb, error){
	"passwd-file": func(ds *driverSet, args string) (backends.Passdb, error) {
		return ds.passwdFile(args)
	},
	"static": func(ds *driverSet, args string) (backends.Passdb, error) {
		return static.New(args)
	},
	"ldap": func(ds *driverSet, args string) (backends.Passdb, error) {
		return ds.ldap(args)
	},
	"sql": func(ds *driverSet, args string) (backends.Passdb, error) {
		return ds.sql(args)
	},
	"pam": func(ds *driverSet, args string) (backends.Passdb, error) {
		db, err := pam.New(args, ds.log)
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return db, nil
	},
	"shadow": func(ds *driverSet, args string) (backends.Passdb, error) {
		db, err := shadow.New(args, ds.log)
		if err != nil {
			return nil, err
		}
		return db, nil
	},
}

var userdbDrivers = map[string]func(ds *driverSet, args string) (backends.Userdb, error){
	"passwd-file": func(ds *driverSet, args string) (backends.Userdb, error) {
		return ds.passwdFile(args)
	},
	"static": func(ds *driverSet, args string) (backends.Userdb, error) {
		return static.New(args)
	},
	"prefetch": func(ds *driverSet, args string) (backends.Userdb, error) {
		return prefetch.DB{}, nil
	},
	"passwd": func(ds *driverSet, args string) (backends.Userdb, error) {
		return passwd.New(args)
	},
	"ldap": func(ds *driverSet, args string) (backends.Userdb, error) {
		return ds.ldap(args)
	},
	"sql": func(ds *driverSet, args string) (backends.Userdb, error) {
		return ds.sql(args)
	},
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

// sql shares one driver (and its connection pools) between a passdb and a
// userdb reading the same dovecot-sql.conf.ext.
func (ds *driverSet) sql(args string) (*sqldb.DB, error) {
	key := "sql\x00" + args
	if d, ok := ds.built[key]; ok {
		return d.(*sqldb.DB), nil
	}
	d, err := sqldb.New(args, ds.log)
	if err != nil {
		return nil, err
	}
	ds.built[key] = d
	return d, nil
}

func (ds *driverSet) passdb(driver, args string) (backends.Passdb, error) {
	f, ok := passdbDrivers[strings.ToLower(driver)]
	if !ok {
		return nil, fmt.Errorf("unknown passdb driver %q (known: %s)", driver, knownDrivers(passdbDrivers))
	}
	return f(ds, args)
}

func (ds *driverSet) userdb(driver, args string) (backends.Userdb, error) {
	f, ok := userdbDrivers[strings.ToLower(driver)]
	if !ok {
		return nil, fmt.Errorf("unknown userdb driver %q (known: %s)", driver, knownDrivers(userdbDrivers))
	}
	return f(ds, args)
}

func knownDrivers[V any](m map[string]V) string {
	var names []string
	for k := range m {
		names = append(names, k)
	}
	slicesSort(names)
	return strings.Join(names, ", ")
}
