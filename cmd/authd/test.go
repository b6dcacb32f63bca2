package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/grpcserver"
)

// Exit codes of `authd test`, the same as doveadm's (protocol.md §3.2).
const (
	exitOK       = 0
	exitTempFail = 75
	exitNoPerm   = 77
	exitUsage    = 64
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// cmdTest authenticates a user with PLAIN over a client socket, like
// `doveadm auth test`.
func cmdTest(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("a", "run/auth-client", "auth client socket")
	master := fs.String("M", "", "master user: authenticate as this master user to log in as USER")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	grpcAddr := fs.String("grpc", "", "use authd's gRPC API at `addr` (host:port or unix:/path) instead of -a")
	var tlsOpts grpcserver.TLSOptions
	tlsOpts.RegisterFlags(fs)
	var extra multiFlag
	fs.Var(&extra, "x", "extra AUTH parameter key=value (repeatable), e.g. -x service=imap -x rip=192.0.2.1")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() < 1 || fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: authd test [-a SOCKET | --grpc ADDR [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]] [-x key=value]... USER [PASSWORD]")
		return exitUsage
	}
	user := fs.Arg(0)
	var pass string
	if fs.NArg() == 2 {
		pass = fs.Arg(1)
	} else {
		fmt.Fprint(stderr, "Password: ")
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "authd test: reading password:", err)
			return exitUsage
		}
		pass = strings.TrimRight(line, "\r\n")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *grpcAddr != "" {
		gc, err := grpcserver.DialClient(*grpcAddr, tlsOpts)
		if err != nil {
			fmt.Fprintf(stderr, "authd test: %v\n", err)
			return exitUsage
		}
		defer gc.Close()
		return gc.Test(ctx, stdout, stderr, user, *master, []byte(pass), extra)
	}
	c, err := dovecot.DialAuth(ctx, *sock)
	if err != nil {
		fmt.Fprintf(stderr, "authd test: %s: %v\n", *sock, err)
		return exitTempFail
	}
	defer c.Close()
	// Like doveadm: the authzid is the user itself, or with -M the master
	// authenticates and USER is the login user.
	authzid, authcid := user, user
	if *master != "" {
		authcid = *master
	}
	r, err := c.Plain(ctx, extra, authzid, authcid, pass)
	if err != nil {
		fmt.Fprintf(stderr, "authd test: %v\n", err)
		return exitTempFail
	}
	switch r.Cmd {
	case "OK":
		fmt.Fprintf(stdout, "passdb: %s auth succeeded\n", user)
		printExtra(stdout, r.Fields)
		return exitOK
	default:
		fmt.Fprintf(stdout, "passdb: %s auth failed\n", user)
		printExtra(stdout, r.Fields)
		if code, _ := r.Get("code"); code == "temp_fail" {
			return exitTempFail
		}
		return exitNoPerm
	}
}

func printExtra(w io.Writer, fs []string) {
	var shown []string
	for _, f := range fs {
		if f != "" {
			shown = append(shown, f)
		}
	}
	if len(shown) == 0 {
		return
	}
	fmt.Fprintln(w, "extra fields:")
	for _, f := range shown {
		fmt.Fprintf(w, "  %s\n", f)
	}
}
