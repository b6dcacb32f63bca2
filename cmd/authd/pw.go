package main

import (
	"context"
	"io"

	"github.com/authd-project/authd/internal/pwtool"
)

func cmdPw(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return pwtool.Run(ctx, args, stdin, stdout, stderr)
}
