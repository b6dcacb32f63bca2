package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/dovecot"
	"github.com/authd-project/authd/internal/grpcserver"
)

// Exit code for an unknown user, as doveadm's (EX_NOUSER).
const exitNoUser = 67

// cmdMasterLookup implements `authd user` (USER, like doveadm user) and
// `authd lookup` (PASS, like doveadm auth lookup) over a master or userdb
// socket. A mask with * or ? lists users (LIST).
func cmdMasterLookup(ctx context.Context, cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	sock := fs.String("a", "run/auth-userdb", "auth-userdb or auth-master socket")
	timeout := fs.Duration("timeout", 30*time.Second, "give up after this long")
	grpcAddr := fs.String("grpc", "", "use authd's gRPC API at `addr` (host:port or unix:/path) instead of -a")
	var tlsOpts grpcserver.TLSOptions
	tlsOpts.RegisterFlags(fs)
	var extra multiFlag
	fs.Var(&extra, "x", "extra parameter key=value (repeatable), e.g. -x service=imap")
	if err := fs.Parse(args); err != nil || fs.NArg() != 1 {
		fmt.Fprintf(stderr, "usage: authd %s [-a SOCKET | --grpc ADDR [--tls-ca FILE] [--tls-cert FILE --tls-key FILE]] [-x key=value]... USER\n", cmd)
		return exitUsage
	}
	user := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	if *grpcAddr != "" {
		gc, err := grpcserver.DialClient(*grpcAddr, tlsOpts)
		if err != nil {
			fmt.Fprintf(stderr, "authd %s: %v\n", cmd, err)
			return exitUsage
		}
		defer gc.Close()
		if cmd == "lookup" {
			return gc.Lookup(ctx, stdout, stderr, user, extra)
		}
		return gc.User(ctx, stdout, stderr, user, extra)
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "unix", *sock)
	if err != nil {
		fmt.Fprintf(stderr, "authd %s: %v\n", cmd, err)
		return exitTempFail
	}
	defer nc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	verb := "USER"
	if cmd == "lookup" {
		verb = "PASS"
	}
	line := verb + "\t1\t" + dovecot.Escape(user)
	if cmd == "user" && strings.ContainsAny(user, "*?") {
		verb = "LIST"
		line = "LIST\t1\tuser=" + dovecot.Escape(user)
	}
	hasService := false
	for _, x := range extra {
		hasService = hasService || strings.HasPrefix(x, "service=")
		line += "\t" + dovecot.Escape(x)
	}
	if !hasService {
		line += "\tservice=authd"
	}
	if _, err := fmt.Fprintf(nc, "VERSION\t1\t0\n%s\n", line); err != nil {
		fmt.Fprintf(stderr, "authd %s: %v\n", cmd, err)
		return exitTempFail
	}
	r := bufio.NewReader(nc)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			fmt.Fprintf(stderr, "authd %s: %v\n", cmd, err)
			return exitTempFail
		}
		f := dovecot.SplitLine(strings.TrimRight(l, "\n"))
		switch f[0] {
		case "VERSION", "SPID":
			continue
		case "USER", "PASS":
			name := user
			rest := f[2:]
			if f[0] == "USER" && len(f) > 2 {
				name, rest = f[2], f[3:]
			}
			fmt.Fprintf(stdout, "field\tvalue\nuser\t%s\n", name)
			for _, kv := range rest {
				if kv == "" {
					continue
				}
				k, v, _ := strings.Cut(kv, "=")
				fmt.Fprintf(stdout, "%s\t%s\n", k, v)
			}
			return exitOK
		case "LIST":
			if len(f) > 2 {
				fmt.Fprintln(stdout, f[2])
			}
		case "DONE":
			if len(f) > 2 && f[2] == "fail" {
				fmt.Fprintf(stderr, "authd %s: listing users failed\n", cmd)
				return exitTempFail
			}
			return exitOK
		case "NOTFOUND":
			fmt.Fprintf(stderr, "user %s doesn't exist\n", user)
			return exitNoUser
		case "FAIL":
			fmt.Fprintf(stderr, "userdb lookup failed for %s\n", user)
			return exitTempFail
		default:
			fmt.Fprintf(stderr, "authd %s: unexpected reply %q\n", cmd, l)
			return exitTempFail
		}
	}
}
