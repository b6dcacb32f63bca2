// Command authd is a standalone authentication daemon that speaks
// Dovecot's auth protocols: a passdb/userdb server for Dovecot, Postfix and
// doveadm, configured in Dovecot's own syntax.
//
// Subcommands:
//
//	authd [serve] [-c FILE]          run the daemon in the foreground
//	authd check -c FILE              validate a config, print the effective auth config
//	authd convert -c FILE [-o OUT] [-dovecot]  rewrite a Dovecot 2.3 auth config in 2.4's language
//	authd test -a SOCKET USER [PASS] authenticate like doveadm auth test
//	authd user -a SOCKET USER        userdb lookup like doveadm user
//	authd lookup -a SOCKET USER      passdb lookup like doveadm auth lookup
//	authd penalty [reset …]          list or reset the brute-force defence's keys
//	authd pw …                       generate or verify password hashes like doveadm pw
//	authd version
//
// This package parses the command line and dispatches; the daemon is
// package daemon, the client commands package cli.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/authd-project/authd/backends/checkpassword"
	"github.com/authd-project/authd/internal/convert"
	"github.com/authd-project/authd/internal/daemon"
	"github.com/authd-project/authd/internal/pwtool"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	cmd := "serve"
	if len(args) > 0 && len(args[0]) > 0 && args[0][0] != '-' {
		cmd, args = args[0], args[1:]
	}
	switch cmd {
	case "serve":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
		defer stop()
		return cmdServe(ctx, args, stdout, stderr)
	case "check":
		return cmdCheck(args, stdout, stderr)
	case "convert":
		return cmdConvert(args, stdout, stderr)
	case "test":
		return cmdTest(context.Background(), args, stdin, stdout, stderr)
	case "user", "lookup":
		return cmdLookup(context.Background(), cmd, args, stdout, stderr)
	case "penalty":
		return cmdPenalty(context.Background(), args, stdout, stderr)
	case "pw":
		return pwtool.Run(context.Background(), args, stdin, stdout, stderr)
	case checkpassword.ReplyCommand:
		return cmdCheckpasswordReply(stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "authd", version)
		return 0
	case "help", "-h", "--help":
		usage(stdout)
		return 0
	default:
		fmt.Fprintf(stderr, "authd: unknown command %q\n", cmd)
		usage(stderr)
		return 2
	}
}

func usage(w io.Writer) {
	fmt.Fprint(w, `usage:
  authd [serve] [-c FILE]            run the daemon (default config /etc/authd/authd.conf, else the built-in demo)
  authd check [-c FILE]              check a config; print every error with file:line, or the effective config
  authd convert -c FILE [-o OUT] [-dovecot]
                                     rewrite a Dovecot 2.3 auth config (with its includes and .conf.ext files)
                                     in Dovecot 2.4's language; list what has no 2.4 equivalent; -dovecot
                                     leaves out authd's own settings (a file for Dovecot 2.4 itself)
  authd test -a SOCKET [-x key=value]... USER [PASSWORD]
                                     authenticate like 'doveadm auth test' (exit 0 ok, 77 failed, 75 temporary failure)
  authd user -a SOCKET [-x key=value]... USER|MASK
                                     userdb lookup like 'doveadm user' (exit 0, 67 unknown, 75 failure); a mask lists users
  authd lookup -a SOCKET USER        passdb lookup like 'doveadm auth lookup'
      test, user and lookup take --grpc ADDR (host:port or unix:/path) instead of -a, with
      --tls-ca FILE, --tls-cert FILE --tls-key FILE (mTLS), --tls, --tls-server-name NAME;
      listing users over gRPC needs the admin role (admin_clients, or admin_uids on a unix: socket)
  authd penalty [-a SOCKET] [-n N]  list the addresses and accounts the brute-force defence refuses, and the
                                     ones failing most (on the auth-master socket, like 'doveadm penalty')
  authd penalty [-a SOCKET] reset ip|prefix|account KEY
                                     forget the failures of an address, a network or an account
  authd pw [-s SCHEME] [-p PASSWORD] [-u USER] [-r ROUNDS] | -t HASH | -l
                                     generate or verify a password hash like 'doveadm pw'
  authd version
  authd checkpassword-reply          the reply program of checkpassword passdbs/userdbs (run by them, not by hand)
`)
}

// cmdCheckpasswordReply is the reply program the checkpassword driver
// passes to its program (backends/checkpassword): the answer goes to fd 4.
func cmdCheckpasswordReply(stderr io.Writer) int {
	fd4 := os.NewFile(4, "fd4")
	if fd4 == nil {
		fmt.Fprintln(stderr, "checkpassword-reply: no fd 4")
		return 111
	}
	defer fd4.Close()
	return checkpassword.Reply(checkpassword.ReplyEnv{
		Getenv: os.LookupEnv,
		UID:    os.Getuid(), EUID: os.Geteuid(), GID: os.Getgid(), EGID: os.Getegid(),
	}, fd4, stderr)
}

// cmdServe runs the daemon until ctx ends; SIGHUP reloads.
func cmdServe(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("serve", args, stderr)
	if !ok {
		return 2
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	err := daemon.Run(ctx, daemon.Options{ConfigPath: path, Version: version, Reload: hup, Stdout: stdout, Stderr: stderr})
	if err != nil {
		return 1
	}
	return 0
}

// cmdConvert writes a 2.3 configuration in 2.4's language (package
// convert). The output holds the configuration's secrets: a file written
// with -o is made readable by its owner only.
func cmdConvert(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("convert", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("c", "", "the Dovecot 2.3 configuration `file` to convert")
	out := fs.String("o", "", "write the result to `file` (mode 0600) instead of stdout")
	dovecotOnly := fs.Bool("dovecot", false, "leave out authd's own settings and sections: a file for Dovecot 2.4 itself")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *in == "" || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "usage: authd convert -c FILE [-o OUT] [-dovecot]")
		return 2
	}
	text, err := convert.File(*in, convert.Options{Dovecot: *dovecotOnly})
	if err != nil {
		fmt.Fprintln(stderr, "authd convert:", err)
		return 1
	}
	if *out == "" {
		_, err = stdout.Write(text)
	} else {
		err = os.WriteFile(*out, text, 0o600)
	}
	if err != nil {
		fmt.Fprintln(stderr, "authd convert:", err)
		return 1
	}
	return 0
}

// cmdCheck validates a configuration (daemon.Check).
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	path, ok := configFlag("check", args, stderr)
	if !ok {
		return 2
	}
	if err := daemon.Check(path, stdout, stderr); err != nil {
		if !errors.Is(err, daemon.ErrInvalidConfig) {
			fmt.Fprintln(stderr, "authd check:", err)
		}
		return 1
	}
	return 0
}
