// Package pwtool implements `authd pw`, a drop-in for `doveadm pw`: it
// generates stored passwords ("{SCHEME}…") and checks a password against a
// stored value, using package schemes.
//
// Options (as doveadm pw): -s SCHEME (default CRYPT, doveadm's default,
// which writes bcrypt), -p PASSWORD (else read from stdin: prompted twice
// without echo on a terminal, otherwise one line), -u USER (DIGEST-MD5),
// -r ROUNDS, -t HASH (verify; exit 0 on a match), -V (verify what was just
// generated), -l (list schemes).
//
// Exit codes: 0 success or match; 1 mismatch or any failure; 64 bad usage.
// Messages on stderr follow doveadm's wording ("Fatal: reverse password
// verification check failed: Password mismatch"). The password is never
// printed.
package pwtool

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"github.com/authd-project/authd/schemes"
)

// errMismatch is doveadm pw's own message, word for word: scripts that
// drove doveadm pw see the same text.
//
//lint:ignore ST1005 doveadm pw's exact message
var errMismatch = errors.New("Passwords don't match!")

const (
	exitOK       = 0
	exitFailure  = 1
	exitUsage    = 64 // EX_USAGE
	defaultSchem = "CRYPT"
	usageText    = "usage: authd pw [-l] [-p password] [-r rounds] [-s scheme] [-t hash] [-u user] [-V]"
)

// Run executes `authd pw` with args (without the program and subcommand
// names) and returns the process exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("pw", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		schemeName = fs.String("s", defaultSchem, "password scheme")
		password   = fs.String("p", "", "password (read from stdin when absent)")
		user       = fs.String("u", "", "user name (DIGEST-MD5)")
		rounds     = fs.Int("r", 0, "rounds / cost (0: scheme default)")
		testHash   = fs.String("t", "", "verify this stored value")
		list       = fs.Bool("l", false, "list schemes")
		reverify   = fs.Bool("V", false, "verify the generated value")
	)
	if err := fs.Parse(args); err != nil {
		fmt.Fprintf(stderr, "pw: %v\n%s\n", err, usageText)
		return exitUsage
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pw: unexpected argument %q\n%s\n", fs.Arg(0), usageText)
		return exitUsage
	}
	passwordGiven := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == "p" {
			passwordGiven = true
		}
	})

	if *list {
		// doveadm prints every name followed by a space, then a newline.
		fmt.Fprintln(stdout, strings.Join(schemes.List(), " ")+" ")
		return exitOK
	}
	if *rounds < 0 {
		fmt.Fprintf(stderr, "Fatal: Invalid number of rounds: %d\n", *rounds)
		return exitUsage
	}
	canonical, ok := schemes.Canonical(*schemeName)
	if !ok && *testHash == "" {
		fmt.Fprintf(stderr, "Fatal: Unknown scheme: %s\n", *schemeName)
		return exitFailure
	}
	if err := ctx.Err(); err != nil {
		fmt.Fprintf(stderr, "Fatal: %v\n", err)
		return exitFailure
	}

	pw := []byte(*password)
	if !passwordGiven {
		var err error
		pw, err = readPassword(stdin, stderr, *testHash == "")
		if err != nil {
			fmt.Fprintf(stderr, "Fatal: %v\n", err)
			return exitFailure
		}
	}
	defer clear(pw)

	if *testHash != "" {
		return verify(*testHash, *schemeName, pw, *user, stdout, stderr)
	}

	data, err := schemes.Generate(canonical, pw, *user, *rounds)
	if err != nil {
		fmt.Fprintf(stderr, "Fatal: %v\n", err)
		return exitFailure
	}
	out := "{" + canonical + "}" + data
	if *reverify {
		ok, err := schemes.Verify(canonical, data, pw, *user)
		if err != nil || !ok {
			fmt.Fprintf(stderr, "Fatal: reverse password verification check failed: %s\n", reason(ok, err))
			return exitFailure
		}
		out += " (verified)"
	}
	fmt.Fprintln(stdout, out)
	return exitOK
}

// verify implements -t: the stored value is split as passwd-file does
// (the "$1$" rule, then "{SCHEME}"); a value without a prefix uses -s when
// one was given.
func verify(stored, schemeFlag string, pw []byte, user string, stdout, stderr io.Writer) int {
	scheme, data := schemes.Split(stored)
	if scheme == "" {
		if schemeFlag == defaultSchem {
			fmt.Fprintln(stderr, "Fatal: Missing {scheme} prefix from hash")
			return exitFailure
		}
		scheme = schemeFlag
	}
	ok, err := schemes.Verify(scheme, data, pw, user)
	switch {
	case errors.Is(err, schemes.ErrUnknownScheme):
		fmt.Fprintf(stderr, "Fatal: reverse decode check failed: %v\n", err)
		return exitFailure
	case err != nil || !ok:
		fmt.Fprintf(stderr, "Fatal: reverse password verification check failed: %s\n", reason(ok, err))
		return exitFailure
	}
	fmt.Fprintf(stdout, "%s (verified)\n", stored)
	return exitOK
}

func reason(ok bool, err error) string {
	if err != nil {
		return err.Error()
	}
	if !ok {
		return "Password mismatch"
	}
	return ""
}

// readPassword reads the password from stdin. On a terminal it prompts
// without echo (twice when generating, like doveadm); otherwise it reads one
// line, without its line ending.
func readPassword(stdin io.Reader, stderr io.Writer, confirm bool) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fd := int(f.Fd())
		fmt.Fprint(stderr, "Enter new password: ")
		pw, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("reading password: %v", err)
		}
		if confirm {
			fmt.Fprint(stderr, "Retype new password: ")
			again, err := term.ReadPassword(fd)
			fmt.Fprintln(stderr)
			if err != nil {
				return nil, fmt.Errorf("reading password: %v", err)
			}
			same := string(again) == string(pw)
			clear(again)
			if !same {
				clear(pw)
				return nil, errMismatch
			}
		}
		return pw, nil
	}
	line, err := bufio.NewReader(stdin).ReadBytes('\n')
	if err != nil && (err != io.EOF || len(line) == 0) {
		if err == io.EOF {
			return nil, errors.New("no password given (use -p or stdin)")
		}
		return nil, fmt.Errorf("reading password: %v", err)
	}
	return bytes.TrimRight(line, "\r\n"), nil
}
