package engine_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/authd-project/authd/backends/passwdfile"
	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/engine"
	"github.com/authd-project/authd/schemes"
)

// Micro-benchmarks of one request through the engine, without any
// protocol: name processing, the passdb chain over an in-memory
// passwd-file, scheme verification and the result fields. Run with
//
//	go test -run '^$' -bench 'VerifyPlain' -benchmem ./internal/engine
//
// and add -cpuprofile/-memprofile to see where the time and allocations go.

const benchUsers = 10000

// benchEngine builds an engine over a passwd-file of n users
// user%05d@example.com with password pw%05d stored under scheme (hashed
// with authd's own schemes.Generate for anything but PLAIN).
func benchEngine(b *testing.B, scheme string, n int) *engine.Engine {
	b.Helper()
	var sb strings.Builder
	for i := 1; i <= n; i++ {
		pw := fmt.Sprintf("pw%05d", i)
		stored := pw
		if scheme != "PLAIN" {
			h, err := schemes.Generate(scheme, []byte(pw), "", 0)
			if err != nil {
				b.Fatal(err)
			}
			stored = h
		}
		fmt.Fprintf(&sb, "user%05d@example.com:{%s}%s:1000:1000::/var/empty::\n", i, scheme, stored)
	}
	path := filepath.Join(b.TempDir(), "users")
	if err := os.WriteFile(path, []byte(sb.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	db, err := passwdfile.New(path, nil)
	if err != nil {
		b.Fatal(err)
	}
	spec := engine.DBSpec{Driver: "passwd-file", Passdb: db, ResultSuccess: config.RuleReturnOK,
		ResultFailure: config.RuleContinue, ResultInternalfail: config.RuleContinue}
	e, err := engine.New(engine.Settings{}, []engine.DBSpec{spec}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	return e
}

// benchCreds are the users' names and passwords, made once.
func benchCreds(n int) (names []string, pws [][]byte) {
	for i := 1; i <= n; i++ {
		names = append(names, fmt.Sprintf("user%05d@example.com", i))
		pws = append(pws, []byte(fmt.Sprintf("pw%05d", i)))
	}
	return names, pws
}

// BenchmarkVerifyPlain is one AUTH PLAIN's engine work for a {PLAIN}
// passwd-file user: what the client-socket benchmark adds protocol cost to.
func BenchmarkVerifyPlain(b *testing.B) {
	e := benchEngine(b, "PLAIN", benchUsers)
	names, pws := benchCreds(benchUsers)
	info := &engine.Info{Service: "imap", Mech: "PLAIN", NoPenalty: true}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		r := e.VerifyPlain(ctx, info, "", names[i], pws[i])
		if r.Status != engine.StatusOK {
			b.Fatalf("%s: %v %s", names[i], r.Status, r.Reason)
		}
		if i++; i == benchUsers {
			i = 0
		}
	}
}

// BenchmarkVerifyPlainWrong is the same with a wrong password.
func BenchmarkVerifyPlainWrong(b *testing.B) {
	e := benchEngine(b, "PLAIN", benchUsers)
	names, _ := benchCreds(benchUsers)
	info := &engine.Info{Service: "imap", Mech: "PLAIN", NoPenalty: true}
	ctx := context.Background()
	wrong := []byte("wrong")
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if r := e.VerifyPlain(ctx, info, "", names[i], wrong); r.Status != engine.StatusFail {
			b.Fatalf("%v", r.Status)
		}
		if i++; i == benchUsers {
			i = 0
		}
	}
}

// BenchmarkVerifyPlainParallel runs VerifyPlain on every core: contention
// in the engine or the driver (locks, shared maps) shows up here.
func BenchmarkVerifyPlainParallel(b *testing.B) {
	e := benchEngine(b, "PLAIN", benchUsers)
	names, pws := benchCreds(benchUsers)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		info := &engine.Info{Service: "imap", Mech: "PLAIN", NoPenalty: true}
		i := 0
		for pb.Next() {
			if r := e.VerifyPlain(ctx, info, "", names[i], pws[i]); r.Status != engine.StatusOK {
				b.Errorf("%v", r.Status)
				return
			}
			if i++; i == benchUsers {
				i = 0
			}
		}
	})
}

// BenchmarkVerifySHA512Crypt is one {SHA512-CRYPT} verification (5000
// rounds) through the engine: the cost that bounds the passwd-file and
// uncached SQL SHA512-CRYPT scenarios.
func BenchmarkVerifySHA512Crypt(b *testing.B) {
	const n = 64
	e := benchEngine(b, "SHA512-CRYPT", n)
	names, pws := benchCreds(n)
	info := &engine.Info{Service: "imap", Mech: "PLAIN", NoPenalty: true}
	ctx := context.Background()
	i := 0
	b.ReportAllocs()
	for b.Loop() {
		if r := e.VerifyPlain(ctx, info, "", names[i], pws[i]); r.Status != engine.StatusOK {
			b.Fatalf("%v", r.Status)
		}
		if i++; i == n {
			i = 0
		}
	}
}
