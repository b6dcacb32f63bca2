// Package conformance is the suite every passdb and userdb driver runs
// (docs/architecture.md, house rule 6). A driver's own test stores Users in its real
// backend (a passwd-file, a MariaDB table, an LDAP tree), builds the
// driver, and calls RunPassdb / RunUserdb / RunIterator. The suite then
// checks the answers (found, unknown) and "could not tell", fields,
// hostile names and concurrency the same way for every driver.
package conformance

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/vars"
	"github.com/authd-project/authd/schemes"
)

// User is one fixture user. Password is the stored value exactly as the
// backend stores it (with its {SCHEME} prefix); Plain is the password that
// verifies against it.
type User struct {
	Name     string
	Password string
	Plain    string
	UID, GID string
	Home     string
	// Extra are passdb extra fields the backend returns for this user
	// (key → value); "" means a bare flag.
	Extra map[string]string
}

// Users is the fixture every driver stores. The names cover the escaping
// cases a query or filter must survive.
var Users = []User{
	{Name: "alice@example.com", Password: "{PLAIN}secret", Plain: "secret", UID: "1000", GID: "1000", Home: "/home/alice",
		Extra: map[string]string{"userdb_mail": "maildir:~/Maildir"}},
	{Name: "bob@example.com", Password: "{SHA512-CRYPT}$6$I6snSvYT4fxI4JV9$PL3IhYk39g8R/7Zhb.PqPnugo.YYT1GEtruZR64TZPZT2Z4xfylNF/S/IAhKnP55FDY0VsB4Ramci2m0IccQX0",
		Plain: "wonderland", UID: "1001", GID: "1001", Home: "/home/bob"},
	{Name: "carol@example.com", Password: "{SSHA512}+EFz9gBzU4Jjl9xNciBjm2R8WcWDgf5ZW8k+tZNaytoz9uA1MZf4lu6h0ILkzf3IQeHva1KLBe3GbMnwjS3scSJeUH8=",
		Plain: "password3", UID: "1002", GID: "1002", Home: "/home/carol"},
	// Names that break naive quoting: SQL quotes, LDAP filter and DN
	// specials.
	{Name: "o'brien@example.com", Password: "{PLAIN}quote", Plain: "quote", UID: "1003", GID: "1003", Home: "/home/obrien"},
	{Name: "star*(x)@example.com", Password: "{PLAIN}star", Plain: "star", UID: "1004", GID: "1004", Home: "/home/star"},
}

// Hostile names that must be "not found" (never an error, never another
// user's entry) for every driver.
var Hostile = []string{
	"' OR '1'='1",
	"alice@example.com' OR '1'='1",
	"alice@example.com' -- ",
	`alice@example.com\`,
	"alice@example.com\x00",
	"*",
	"*)(uid=*",
	"alice@example.com)(|(uid=*",
	"alice@example.com,ou=people",
	"+alice@example.com",
	"\xff\xfe multibyte \xe4\xbd\xa0",
	"%' OR 1=1 -- ",
}

// Request builds a request for name with typical request values.
func Request(name string) *backends.Request {
	return &backends.Request{User: name, Vars: &vars.Context{User: name, Service: "imap", RemoteIP: "192.0.2.10", LocalIP: "192.0.2.1"}}
}

// RunPassdb checks a passdb that serves Users.
func RunPassdb(t *testing.T, db backends.Passdb) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Run("found", func(t *testing.T) {
		for _, u := range Users {
			pe, err := db.LookupPass(ctx, Request(u.Name))
			if err != nil || pe.Outcome != backends.Found {
				t.Errorf("%s: %v err=%v, want found", u.Name, pe.Outcome, err)
				continue
			}
			if !pe.HasPassword {
				t.Errorf("%s: no password returned", u.Name)
				continue
			}
			good, err := schemes.Verify(pe.Scheme, pe.Data, []byte(u.Plain), u.Name)
			if err != nil || !good {
				t.Errorf("%s: stored {%s}%s does not verify %q: %v", u.Name, pe.Scheme, pe.Data, u.Plain, err)
			}
			bad, _ := schemes.Verify(pe.Scheme, pe.Data, []byte(u.Plain+"x"), u.Name)
			if bad {
				t.Errorf("%s: a wrong password verifies", u.Name)
			}
			for k, v := range u.Extra {
				if got, ok := pe.Fields.Get(k); !ok || got != v {
					t.Errorf("%s: field %s = %q (set %v), want %q", u.Name, k, got, ok, v)
				}
			}
		}
	})
	t.Run("not-found", func(t *testing.T) {
		for _, name := range append([]string{"nosuch@example.com", "ALICE@EXAMPLE.COM.invalid", ""}, Hostile...) {
			pe, err := db.LookupPass(ctx, Request(name))
			if err != nil {
				t.Errorf("%q: error %v, want plain not found", name, err)
			}
			if pe.Outcome == backends.Found {
				t.Errorf("%q: found (%s…): the name reached the query unescaped", name, truncate(pe.Data, 12))
			} else if err == nil && pe.Outcome != backends.Unknown {
				t.Errorf("%q: answered %v, want notfound", name, pe.Outcome)
			}
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		// A cancelled request could not tell: an error, never "not found".
		cctx, ccancel := context.WithCancel(ctx)
		ccancel()
		pe, err := db.LookupPass(cctx, Request("alice@example.com"))
		if err == nil && pe.Outcome != backends.Found {
			t.Errorf("cancelled lookup answered %v", pe.Outcome)
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		concurrent(t, func() error {
			for _, u := range Users {
				pe, err := db.LookupPass(ctx, Request(u.Name))
				if err != nil || pe.Outcome != backends.Found || !pe.HasPassword {
					return fmt.Errorf("%s: %v err=%v", u.Name, pe.Outcome, err)
				}
			}
			return nil
		})
	})
}

// RunUserdb checks a userdb that serves Users with uid, gid and home.
func RunUserdb(t *testing.T, db backends.Userdb) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Run("found", func(t *testing.T) {
		for _, u := range Users {
			ans, err := db.LookupUser(ctx, Request(u.Name))
			if err != nil || ans.Outcome != backends.Found {
				t.Errorf("%s: %v err=%v, want found", u.Name, ans.Outcome, err)
				continue
			}
			for k, want := range map[string]string{"uid": u.UID, "gid": u.GID, "home": u.Home} {
				if got, _ := ans.Fields.Get(k); got != want {
					t.Errorf("%s: %s=%q, want %q (fields %s)", u.Name, k, got, want, ans.Fields)
				}
			}
		}
	})
	t.Run("not-found", func(t *testing.T) {
		for _, name := range append([]string{"nosuch@example.com"}, Hostile...) {
			ans, err := db.LookupUser(ctx, Request(name))
			if err != nil || ans.Outcome != backends.Unknown {
				t.Errorf("%q: %v err=%v, want notfound", name, ans.Outcome, err)
			}
		}
	})
	t.Run("concurrent", func(t *testing.T) {
		concurrent(t, func() error {
			for _, u := range Users {
				if ans, err := db.LookupUser(ctx, Request(u.Name)); err != nil || ans.Outcome != backends.Found {
					return fmt.Errorf("%s: %v err=%v", u.Name, ans.Outcome, err)
				}
			}
			return nil
		})
	})
}

// RunIterator checks that listing returns exactly Users (in any order)
// and honours an early stop.
func RunIterator(t *testing.T, it backends.Iterator) {
	ctx := context.Background()
	var got []string
	if err := it.IterateUsers(ctx, func(u string) bool { got = append(got, u); return true }); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, u := range Users {
		want = append(want, u.Name)
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("listed %q, want %q", got, want)
	}
	n := 0
	if err := it.IterateUsers(ctx, func(string) bool { n++; return false }); err != nil {
		t.Fatal(err)
	}
	if n != 1 {
		t.Errorf("iteration went on after fn returned false: %d calls", n)
	}
}

func concurrent(t *testing.T, f func() error) {
	const workers = 32
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// PasswdFile renders Users in passwd-file format, for drivers (and
// tests) that read one.
func PasswdFile() string {
	var b strings.Builder
	for _, u := range Users {
		fmt.Fprintf(&b, "%s:%s:%s:%s::%s::", u.Name, u.Password, u.UID, u.GID, u.Home)
		var extra []string
		for k, v := range u.Extra {
			if v == "" {
				extra = append(extra, k)
			} else {
				extra = append(extra, k+"="+v)
			}
		}
		slices.Sort(extra)
		b.WriteString(strings.Join(extra, " "))
		b.WriteByte('\n')
	}
	return b.String()
}
