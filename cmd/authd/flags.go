package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/cli"
	"github.com/authd-project/authd/internal/daemon"
)

// configFlag parses -c. An empty path means "not given": the daemon then
// reads its default file, or runs the built-in demo without one.
func configFlag(cmd string, args []string, stderr io.Writer) (path string, ok bool) {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&path, "c", "", "configuration `file` (default "+daemon.DefaultConfigPath+", else the built-in demo)")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	return path, true
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// clientFlags are the flags test, user and lookup share.
type clientFlags struct {
	fs      *flag.FlagSet
	target  cli.Target
	timeout time.Duration
	params  multiFlag
}

func newClientFlags(cmd, defaultSocket, socketHelp string, stderr io.Writer) *clientFlags {
	c := &clientFlags{fs: flag.NewFlagSet(cmd, flag.ContinueOnError)}
	c.fs.SetOutput(stderr)
	c.fs.StringVar(&c.target.Socket, "a", defaultSocket, socketHelp)
	c.fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "give up after this long")
	c.fs.StringVar(&c.target.GRPC, "grpc", "", "use authd's gRPC API at `addr` (host:port or unix:/path) instead of -a")
	c.target.TLS.RegisterFlags(c.fs)
	c.fs.Var(&c.params, "x", "extra parameter key=value (repeatable), e.g. -x service=imap -x rip=192.0.2.1")
	return c
}

const clientUsage = "[-a SOCKET | --grpc ADDR [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]] [-x key=value]..."

// cmdTest authenticates like `doveadm auth test`.
func cmdTest(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	c := newClientFlags("test", "run/auth-client", "auth client socket", stderr)
	master := c.fs.String("M", "", "master user: authenticate as this master user to log in as USER")
	if err := c.fs.Parse(args); err != nil {
		return cli.ExitUsage
	}
	if c.fs.NArg() < 1 || c.fs.NArg() > 2 {
		fmt.Fprintln(stderr, "usage: authd test "+clientUsage+" USER [PASSWORD]")
		return cli.ExitUsage
	}
	user, pass := c.fs.Arg(0), c.fs.Arg(1)
	if c.fs.NArg() == 1 {
		fmt.Fprint(stderr, "Password: ")
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			fmt.Fprintln(stderr, "authd test: reading password:", err)
			return cli.ExitUsage
		}
		pass = strings.TrimRight(line, "\r\n")
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return cli.Test(ctx, c.target, user, *master, []byte(pass), c.params, stdout, stderr)
}

// cmdLookup asks the userdb (`authd user`, like doveadm user) or the
// passdb (`authd lookup`, like doveadm auth lookup).
func cmdLookup(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	c := newClientFlags(cmd, "run/auth-userdb", "auth-userdb or auth-master socket", stderr)
	if err := c.fs.Parse(args); err != nil || c.fs.NArg() != 1 {
		fmt.Fprintf(stderr, "usage: authd %s %s USER\n", cmd, clientUsage)
		return cli.ExitUsage
	}
	kind := cli.UserLookup
	if cmd == "lookup" {
		kind = cli.PassLookup
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	return cli.Lookup(ctx, c.target, kind, c.fs.Arg(0), c.params, stdout, stderr)
}

// cmdPenalty lists or resets the brute-force defence's keys over the
// auth-master socket.
func cmdPenalty(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("penalty", flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("a", "run/auth-master", "auth-master socket")
	n := fs.Int("n", 100, "list at most this many keys")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	if err := fs.Parse(args); err != nil {
		return cli.ExitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	switch {
	case fs.NArg() == 0:
		return cli.Penalty(ctx, *sock, *n, stdout, stderr)
	case fs.NArg() == 3 && fs.Arg(0) == "reset":
		return cli.PenaltyReset(ctx, *sock, fs.Arg(1), fs.Arg(2), stdout, stderr)
	}
	fmt.Fprintln(stderr, "usage: authd penalty [-a SOCKET] [-n N] | authd penalty [-a SOCKET] reset ip|prefix|account KEY")
	return cli.ExitUsage
}
