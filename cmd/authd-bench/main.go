// Command authd-bench is authd's load generator and its side-by-side
// benchmark against Dovecot 2.3's auth process. It is tooling: its
// packages live under its own internal/ (load, the generator; grpcload,
// its gRPC protocol; compare, the harness), so that nothing in authd can
// import them.
//
//	authd-bench [run] -a SOCKET [flags]   load one auth server, print rates and latencies
//	authd-bench compare [flags]           start a private Dovecot and authd with the same
//	                                      data and load both, A B A B, scenario by scenario
//
// Targets are unix sockets or loopback TCP addresses only; every run stops
// by itself. See docs/performance.md.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/authd-project/authd/cmd/authd-bench/internal/grpcload"
	"github.com/authd-project/authd/cmd/authd-bench/internal/load"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// protocols is the command's registry of load protocols: the Dovecot
// protocols and gRPC, wired explicitly (docs/architecture.md house rule 5:
// no init registration) and built anew for each run.
func protocols() load.Registry {
	r := load.Builtin()
	r["grpc"] = grpcload.Protocol{}
	return r
}

func run(args []string, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	cmd := "run"
	if len(args) > 0 && args[0] != "" && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "run":
		return cmdRun(ctx, args, stdout, stderr)
	case "compare":
		return cmdCompare(ctx, args, stdout, stderr)
	case "help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "authd-bench: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  authd-bench [run] -a SOCKET|127.0.0.1:PORT [-proto client|master] [-mech PLAIN|LOGIN|SCRAM-SHA-1|SCRAM-SHA-256]
                    [-c CONNS] [-d IN-FLIGHT] [-rate REQ/S] [-t DURATION] [-warmup DURATION] [-n MAX-REQUESTS]
                    [-users N | -users-file FILE] [-wrong SHARE] [-no-penalty] [-warm-all] [-json]
                    [-attack ADDRS [-attack-c CONNS] [-attack-d IN-FLIGHT] [-attack-probe SHARE]]
  authd-bench compare [-authd bin/authd] [-quick] [-scenarios LIST] [-data DIR] [-json FILE]
  authd-bench run -h / compare -h for every flag.
`)
}

// runFlags are the run command's settings beyond load.Config.
type runFlags struct {
	cfg    load.Config
	attack load.Attack
	asJSON bool
	out    string
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	f, code := parseRun(args, stderr)
	if f == nil {
		return code
	}
	var res interface {
		WriteText(io.Writer) error
		WriteJSON(io.Writer) error
	}
	var legit *load.Result
	var err error
	if f.attack.Addrs > 0 {
		var ar *load.AttackResult
		if ar, err = load.RunAttack(ctx, f.cfg, f.attack); err == nil {
			res, legit = ar, ar.Legit
		}
	} else {
		var r *load.Result
		if r, err = load.Run(ctx, f.cfg); err == nil {
			res, legit = r, r
		}
	}
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "authd-bench: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 1
	}
	write := res.WriteText
	if f.asJSON {
		write = res.WriteJSON
	}
	if err := write(stdout); err != nil {
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 1
	}
	if f.out != "" {
		if err := writeJSONFile(f.out, res.WriteJSON); err != nil {
			fmt.Fprintf(stderr, "authd-bench: %v\n", err)
			return 1
		}
	}
	// Under attack, the attackers' own errors do not make the
	// legitimate users' numbers untrustworthy.
	if legit.Requests == 0 || legit.Errors > 0 || legit.Late.Unanswered > 0 {
		fmt.Fprintf(stderr, "authd-bench: %s\n", strings.TrimSpace(problem(legit)))
		return 1
	}
	return 0
}

// parseRun parses the run command's flags; nil and an exit code when
// they are not usable (the reason is said on stderr).
func parseRun(args []string, stderr io.Writer) (*runFlags, int) {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := &runFlags{}
	c := &f.cfg
	target := fs.String("a", "", "target: a socket path (unix:PATH also works) or a loopback HOST:PORT; other addresses are refused")
	fs.StringVar(&c.Protocol, "proto", "client", "protocol: client (AUTH on auth-client/login), master (USER on auth-userdb/auth-master), grpc (Authenticate on authd's gRPC listener)")
	fs.StringVar(&c.Mech, "mech", "PLAIN", "SASL mechanism for the client protocol: PLAIN, LOGIN, SCRAM-SHA-1, SCRAM-SHA-256")
	fs.IntVar(&c.Conns, "c", load.DefaultConns, "connections")
	fs.IntVar(&c.Depth, "d", load.DefaultDepth, "requests in flight per connection")
	fs.DurationVar(&c.Duration, "t", 10*time.Second, fmt.Sprintf("measured duration (at most %v)", load.MaxDuration))
	fs.DurationVar(&c.Warmup, "warmup", 2*time.Second, "warm-up before the measured window (not counted)")
	fs.Float64Var(&c.Rate, "rate", 0, "open loop: send this many requests per second in all, on a fixed schedule over the connections, latency counted from each one's scheduled time (-d then bounds the requests in flight per connection); 0: closed loop")
	fs.Int64Var(&c.MaxRequests, "n", 0, "stop after this many requests, warm-up included (0: only the duration bounds the run)")
	nUsers := fs.Int("users", load.DefaultUserCount, "number of generated users")
	userFmt := fs.String("user-format", load.DefaultUserFormat, "user name format for generated users (%d is 1..N)")
	passFmt := fs.String("pass-format", load.DefaultPassFormat, "password format for generated users")
	usersFile := fs.String("users-file", "", "read users from FILE: user<TAB>password or user:password per line (overrides -users)")
	fs.Float64Var(&c.WrongShare, "wrong", 0, "share of requests (0..1) with a wrong password (USER: an unknown user)")
	fs.BoolVar(&c.NoPenalty, "no-penalty", false, "send no-penalty with every AUTH (Dovecot then skips its per-IP penalty and the anvil lookup; needed for wrong passwords against Dovecot)")
	fs.StringVar(&c.RemoteIP, "rip", "", "send rip=IP with every request (the client address a login process passes on)")
	fs.BoolVar(&c.UserAddrs, "user-addrs", false, "send every user's requests with an address of its own as rip= (10.0.0.1 onwards), as login processes pass on many clients")
	fs.StringVar(&c.Service, "service", load.DefaultService, "service= value")
	fs.DurationVar(&c.Timeout, "timeout", load.DefaultTimeout, "connect/handshake timeout, and how long requests may still take after the window")
	fs.BoolVar(&c.WarmAll, "warm-all", false, "before the warm-up, authenticate every user once (fills an auth cache)")
	fs.Uint64Var(&c.Seed, "seed", 0, "random seed for the user sequence (0: random)")
	fs.IntVar(&f.attack.Addrs, "attack", 0, "run an attack beside the load: this many attacking addresses (1000 is the issue's scenario) guess passwords; the users log in from addresses of their own")
	fs.IntVar(&f.attack.Conns, "attack-c", load.DefaultAttackConns, "attacker connections")
	fs.IntVar(&f.attack.Depth, "attack-d", load.DefaultAttackDepth, "attacker requests in flight per connection")
	fs.Float64Var(&f.attack.ProbeShare, "attack-probe", load.DefaultProbeShare, "share of attacker requests sent with the right password, to measure how many are refused")
	fs.BoolVar(&f.asJSON, "json", false, "print the result as JSON instead of text")
	fs.StringVar(&f.out, "o", "", "also write the JSON result to this file")
	tlsCA := fs.String("tls-ca", "", "grpc: verify the server with this CA (turns TLS on)")
	tlsCert := fs.String("tls-cert", "", "grpc: client certificate (mTLS; turns TLS on)")
	tlsKey := fs.String("tls-key", "", "grpc: client certificate's key")
	tlsName := fs.String("tls-server-name", "", "grpc: name to check the server certificate against")
	if err := fs.Parse(args); err != nil {
		return nil, 2
	}
	fail := func(format string, a ...any) (*runFlags, int) {
		fmt.Fprintf(stderr, "authd-bench: "+format+"\n", a...)
		return nil, 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected arguments %q", fs.Args())
	}
	if *target == "" {
		return fail("-a TARGET is required (a socket path or a loopback host:port)")
	}
	var err error
	if c.Target, err = load.ParseTarget(*target); err != nil {
		return fail("%v", err)
	}
	if c.Users, err = readUsers(*usersFile, *nUsers, *userFmt, *passFmt); err != nil {
		return fail("%v", err)
	}
	if c.WrongShare > 0 && !c.NoPenalty && c.Protocol == "client" && c.RemoteIP == "" && !c.UserAddrs {
		fmt.Fprintln(stderr, "authd-bench: note: wrong passwords without -no-penalty make Dovecot delay every later request from this client by 2–15 s (docs/testing.md §4.3)")
	}
	if c.TLS, err = clientTLS(*tlsCA, *tlsCert, *tlsKey, *tlsName); err != nil {
		return fail("%v", err)
	}
	c.Protocols = protocols()
	return f, 0
}

// readUsers reads the users file, or generates n users.
func readUsers(file string, n int, userFmt, passFmt string) (*load.Users, error) {
	if file == "" {
		return load.GenerateUsers(n, userFmt, passFmt)
	}
	fh, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer fh.Close()
	return load.ReadUsers(fh)
}

// problem explains a run whose numbers cannot be trusted.
func problem(r *load.Result) string {
	switch {
	case r.Requests == 0:
		return "no request completed in the measured window"
	case r.Errors > 0:
		return fmt.Sprintf("%d requests ended in errors", r.Errors)
	default:
		return fmt.Sprintf("%d requests were never answered", r.Late.Unanswered)
	}
}

// clientTLS builds the gRPC client's TLS configuration; nil (plaintext)
// when no TLS flag is given.
func clientTLS(ca, cert, key, name string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: name}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s: no PEM certificate", ca)
		}
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("-tls-cert and -tls-key go together")
	}
	if cert != "" {
		c, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		tc.Certificates = []tls.Certificate{c}
	}
	return tc, nil
}

func writeJSONFile(path string, write func(io.Writer) error) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
