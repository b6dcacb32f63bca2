package testenv

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
)

// TestPostgres starts a cluster with TLS, logs in as its user with psql
// over TCP (verify-full against the test CA, password) and over the
// socket, and checks Kill, Restart and Stop.
func TestPostgres(t *testing.T) {
	t.Parallel()
	ca := NewCA(t)
	var p *Postgres
	timed(t, "StartPostgres (TLS, incl. initdb)", func() {
		p = StartPostgres(t, PostgresOptions{Database: "mail", TLS: ca})
	})
	p.Exec(t, "CREATE TABLE users (username text PRIMARY KEY, password text);\nINSERT INTO users VALUES ('alice@example.com', '{PLAIN}secret');\n")
	psql := filepath.Join(filepath.Dir(mustPostgresBin(t)), "psql")
	query := func(ctx context.Context, overTCP bool, sql string) (string, error) {
		conn := fmt.Sprintf("host=%s port=%d dbname=%s user=%s", p.SocketDir, p.Port, p.Database, p.User)
		if overTCP {
			conn = fmt.Sprintf("host=127.0.0.1 port=%d dbname=%s user=%s password=%s sslmode=verify-full sslrootcert=%s",
				p.Port, p.Database, p.User, p.Password, ca.CertFile)
		}
		return runErr(ctx, cleanEnv(), "", psql, "-X", "-A", "-t", "-d", conn, "-c", sql)
	}
	ctx := ctxT(t)
	for _, tcp := range []bool{true, false} {
		out, err := query(ctx, tcp, "SELECT password FROM users WHERE username='alice@example.com'")
		if err != nil || strings.TrimSpace(out) != "{PLAIN}secret" {
			t.Errorf("query (tcp=%v): %q, %v", tcp, out, err)
		}
	}
	out, err := query(ctx, true, "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
	if err != nil || strings.TrimSpace(out) != "t" {
		t.Errorf("TLS status: %q, %v", out, err)
	}
	timed(t, "Postgres.Kill", p.Kill)
	if out, err := query(ctx, false, "SELECT 1"); err == nil {
		t.Errorf("query after Kill succeeded: %q", out)
	}
	timed(t, "Postgres.Restart", func() { p.Restart(t) })
	if out, err := query(ctx, true, "SELECT COUNT(*) FROM users"); err != nil || strings.TrimSpace(out) != "1" {
		t.Errorf("query after Restart: %q, %v", out, err)
	}
	timed(t, "Postgres.Stop", p.Stop)
}

// mustPostgresBin is the initdb StartPostgres used.
func mustPostgresBin(t *testing.T) string {
	m, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(m) == 0 {
		t.Fatal("no initdb")
	}
	return m[len(m)-1]
}
