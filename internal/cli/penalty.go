package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/authd-project/authd/internal/tabescape"
)

// Penalty lists, on the auth-master socket, the keys the brute-force
// defence refuses and those with the most failures (at most max), like
// doveadm penalty.
func Penalty(ctx context.Context, socket string, max int, stdout, stderr io.Writer) int {
	s := socketTransport{path: socket}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "kind\tkey\tfailures\tlimit\tstate")
	err := s.exchange(ctx, "PENALTY\t1\t"+strconv.Itoa(max), nil, func(f []string) (bool, error) {
		switch {
		case f[0] == "PENALTY" && len(f) >= 7:
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", f[2], f[3], f[4], f[5], f[6])
			return false, nil
		case f[0] == "DONE":
			return true, nil
		}
		return true, fmt.Errorf("unexpected reply %q", strings.Join(f, "\t"))
	})
	if err != nil {
		fmt.Fprintf(stderr, "authd penalty: %s: %v\n", socket, err)
		return ExitTempFail
	}
	w.Flush()
	return ExitOK
}

// PenaltyReset forgets the failures of one key: kind is ip, prefix or
// account; key an address, a network or an account name.
func PenaltyReset(ctx context.Context, socket, kind, key string, stdout, stderr io.Writer) int {
	s := socketTransport{path: socket}
	n := 0
	err := s.exchange(ctx, "PENALTY-RESET\t1\t"+kind+"\t"+tabescape.Escape(key), nil, func(f []string) (bool, error) {
		switch {
		case f[0] == "OK" && len(f) > 2:
			n, _ = strconv.Atoi(f[2])
			return true, nil
		case f[0] == "FAIL":
			return true, fmt.Errorf("%w: unknown kind %q (use ip, prefix or account)", errUsage, kind)
		}
		return true, fmt.Errorf("unexpected reply %q", strings.Join(f, "\t"))
	})
	if err != nil {
		fmt.Fprintf(stderr, "authd penalty reset: %v\n", err)
		return exitFor(err)
	}
	fmt.Fprintf(stdout, "%d keys reset\n", n)
	return ExitOK
}
