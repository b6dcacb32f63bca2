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
                    [-c CONNS] [-d IN-FLIGHT] [-t DURATION] [-warmup DURATION] [-n MAX-REQUESTS]
                    [-users N | -users-file FILE] [-wrong SHARE] [-no-penalty] [-warm-all] [-json]
  authd-bench compare [-authd bin/authd] [-quick] [-scenarios LIST] [-data DIR] [-json FILE]
  authd-bench run -h / compare -h for every flag.
`)
}

func cmdRun(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	target := fs.String("a", "", "target: a socket path (unix:PATH also works) or a loopback HOST:PORT; other addresses are refused")
	proto := fs.String("proto", "client", "protocol: client (AUTH on auth-client/login), master (USER on auth-userdb/auth-master), grpc (Authenticate on authd's gRPC listener)")
	mech := fs.String("mech", "PLAIN", "SASL mechanism for the client protocol: PLAIN, LOGIN, SCRAM-SHA-1, SCRAM-SHA-256")
	conns := fs.Int("c", load.DefaultConns, "connections")
	depth := fs.Int("d", load.DefaultDepth, "requests in flight per connection")
	dur := fs.Duration("t", 10*time.Second, fmt.Sprintf("measured duration (at most %v)", load.MaxDuration))
	warmup := fs.Duration("warmup", 2*time.Second, "warm-up before the measured window (not counted)")
	maxReq := fs.Int64("n", 0, "stop after this many requests, warm-up included (0: only the duration bounds the run)")
	nUsers := fs.Int("users", load.DefaultUserCount, "number of generated users")
	userFmt := fs.String("user-format", load.DefaultUserFormat, "user name format for generated users (%d is 1..N)")
	passFmt := fs.String("pass-format", load.DefaultPassFormat, "password format for generated users")
	usersFile := fs.String("users-file", "", "read users from FILE: user<TAB>password or user:password per line (overrides -users)")
	wrong := fs.Float64("wrong", 0, "share of requests (0..1) with a wrong password (USER: an unknown user)")
	noPenalty := fs.Bool("no-penalty", false, "send no-penalty with every AUTH (Dovecot then skips its per-IP penalty and the anvil lookup; needed for wrong passwords against Dovecot)")
	rip := fs.String("rip", "", "send rip=IP with every request (the client address a login process passes on)")
	service := fs.String("service", load.DefaultService, "service= value")
	timeout := fs.Duration("timeout", load.DefaultTimeout, "connect/handshake timeout, and how long requests may still take after the window")
	warmAll := fs.Bool("warm-all", false, "before the warm-up, authenticate every user once (fills an auth cache)")
	seed := fs.Uint64("seed", 0, "random seed for the user sequence (0: random)")
	asJSON := fs.Bool("json", false, "print the result as JSON instead of text")
	out := fs.String("o", "", "also write the JSON result to this file")
	tlsCA := fs.String("tls-ca", "", "grpc: verify the server with this CA (turns TLS on)")
	tlsCert := fs.String("tls-cert", "", "grpc: client certificate (mTLS; turns TLS on)")
	tlsKey := fs.String("tls-key", "", "grpc: client certificate's key")
	tlsName := fs.String("tls-server-name", "", "grpc: name to check the server certificate against")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "authd-bench: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *target == "" {
		fmt.Fprintln(stderr, "authd-bench: -a TARGET is required (a socket path or a loopback host:port)")
		return 2
	}
	t, err := load.ParseTarget(*target)
	if err != nil {
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 2
	}
	var users *load.Users
	if *usersFile != "" {
		f, err := os.Open(*usersFile)
		if err != nil {
			fmt.Fprintf(stderr, "authd-bench: %v\n", err)
			return 2
		}
		users, err = load.ReadUsers(f)
		f.Close()
		if err != nil {
			fmt.Fprintf(stderr, "authd-bench: %v\n", err)
			return 2
		}
	} else {
		users, err = load.GenerateUsers(*nUsers, *userFmt, *passFmt)
		if err != nil {
			fmt.Fprintf(stderr, "authd-bench: %v\n", err)
			return 2
		}
	}
	if *wrong > 0 && !*noPenalty && *proto == "client" && *rip == "" {
		fmt.Fprintln(stderr, "authd-bench: note: wrong passwords without -no-penalty make Dovecot delay every later request from this client by 2–15 s (docs/testing.md §4.3)")
	}
	tlsConf, err := clientTLS(*tlsCA, *tlsCert, *tlsKey, *tlsName)
	if err != nil {
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 2
	}
	cfg := load.Config{
		Target: t, Protocols: protocols(), Protocol: *proto, Mech: *mech, Conns: *conns, Depth: *depth,
		Duration: *dur, Warmup: *warmup, MaxRequests: *maxReq, Users: users,
		WrongShare: *wrong, NoPenalty: *noPenalty, RemoteIP: *rip, Service: *service,
		Timeout: *timeout, WarmAll: *warmAll, Seed: *seed, TLS: tlsConf,
	}
	res, err := load.Run(ctx, cfg)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			fmt.Fprintln(stderr, "authd-bench: interrupted")
			return 130
		}
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 1
	}
	if *asJSON {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		fmt.Fprintf(stderr, "authd-bench: %v\n", err)
		return 1
	}
	if *out != "" {
		if err := writeJSONFile(*out, res.WriteJSON); err != nil {
			fmt.Fprintf(stderr, "authd-bench: %v\n", err)
			return 1
		}
	}
	if res.Requests == 0 || res.Errors > 0 || res.Late.Unanswered > 0 {
		fmt.Fprintf(stderr, "authd-bench: %s\n", strings.TrimSpace(problem(res)))
		return 1
	}
	return 0
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
