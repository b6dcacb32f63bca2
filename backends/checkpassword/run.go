package checkpassword

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/fields"
	"github.com/authd-project/authd/internal/tabescape"
)

// result is what one run of the program said.
type result struct {
	status int
	reply  fields.Fields
}

// maxStderr bounds what a child's stderr may add to the log.
const maxStderr = 4 << 10

// run starts the program for req (authenticate: with the password on
// fd 3; otherwise a lookup with AUTHORIZED=1) and waits for its verdict
// within the deadline. An error means "could not tell".
func (db *DB) run(ctx context.Context, req *backends.Request, password []byte, authenticate bool) (result, error) {
	select {
	case db.slots <- struct{}{}:
	case <-ctx.Done():
		return result{}, fmt.Errorf("checkpassword: waiting for a free slot (max_children): %w", ctx.Err())
	case <-db.stop.Done():
		return result{}, errors.New("checkpassword: shutting down")
	}
	defer func() { <-db.slots }()
	db.running.Add(1)
	defer db.running.Done()

	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	stopOnClose := context.AfterFunc(db.stop, cancel)
	defer stopOnClose()

	argv := strings.Split(db.cmd.Expand(req.Vars, nil), " ")
	argv = append(argv, db.reply...)
	env := childEnv(req, authenticate)
	input := make([]byte, 0, len(req.User)+len(password)+3)
	input = append(append(append(input, req.User...), 0), password...)
	input = append(input, 0, 0)
	defer clear(input)
	return db.spawn(ctx, argv, env, input)
}

// spawn runs argv with the fd 3 / fd 4 pipes and collects its answer.
func (db *DB) spawn(ctx context.Context, argv, env []string, input []byte) (result, error) {
	inR, inW, err := os.Pipe()
	if err != nil {
		return result{}, fmt.Errorf("checkpassword: pipe: %w", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		inR.Close()
		inW.Close()
		return result{}, fmt.Errorf("checkpassword: pipe: %w", err)
	}
	defer inW.Close()
	defer outR.Close()
	var stderr bytes.Buffer
	cmd := &exec.Cmd{
		Path: argv[0], Args: argv, Env: env,
		ExtraFiles: []*os.File{inR, outW}, // fd 3 and fd 4
		Stderr:     &limitedWriter{w: &stderr, n: maxStderr},
		// Its own group, so that a timeout kills what it started too;
		// and killed should authd die first.
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL},
		// A grandchild keeping stderr open cannot hold Wait forever.
		WaitDelay: 2 * time.Second,
	}
	err = cmd.Start()
	inR.Close()
	outW.Close()
	if err != nil {
		return result{}, fmt.Errorf("checkpassword: cannot run %s: %w", argv[0], err)
	}
	pgid := cmd.Process.Pid
	killGroup := context.AfterFunc(ctx, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) })
	defer killGroup()

	_, werr := inW.Write(input)
	inW.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = outR.SetReadDeadline(dl)
	}
	reply, rerr := io.ReadAll(io.LimitReader(outR, maxReply+1))
	waitErr := cmd.Wait()
	if s := strings.TrimSpace(stderr.String()); s != "" {
		db.log.Warn("checkpassword program wrote to stderr", "program", argv[0], "stderr", s)
	}
	switch {
	case ctx.Err() != nil:
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return result{}, fmt.Errorf("checkpassword: %s did not answer in time: %w", argv[0], ctx.Err())
	case werr != nil:
		return result{}, fmt.Errorf("checkpassword: writing to fd 3: %w", werr)
	case rerr != nil:
		return result{}, fmt.Errorf("checkpassword: reading fd 4: %w", rerr)
	case len(reply) > maxReply:
		return result{}, fmt.Errorf("checkpassword: reply longer than %d bytes", maxReply)
	}
	return parseResult(cmd.ProcessState, waitErr, reply)
}

// parseResult reads the exit status and the reply (Dovecot's
// checkpassword_child_input and sigchld_handler rules).
func parseResult(ps *os.ProcessState, waitErr error, reply []byte) (result, error) {
	if ps == nil {
		return result{}, fmt.Errorf("checkpassword: %w", waitErr)
	}
	if ws, ok := ps.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		return result{}, fmt.Errorf("checkpassword: child died with signal %d", ws.Signal())
	}
	if !ps.Exited() {
		return result{}, fmt.Errorf("checkpassword: child ended abnormally: %v", ps)
	}
	if bytes.IndexByte(reply, 0) >= 0 {
		return result{}, errors.New("checkpassword: NUL characters in the reply")
	}
	if bytes.IndexByte(reply, '\n') >= 0 {
		return result{}, errors.New("checkpassword: LF characters in the reply")
	}
	return result{status: ps.ExitCode(), reply: parseReply(string(reply))}, nil
}

// parseReply splits TAB-separated, tab-escaped key=value fields; empty
// entries are skipped, a key without '=' has an empty value.
func parseReply(s string) fields.Fields {
	var out fields.Fields
	for _, part := range strings.Split(s, "\t") {
		part = tabescape.Unescape(part)
		if part == "" {
			continue
		}
		k, v, _ := strings.Cut(part, "=")
		if k == "" {
			continue
		}
		out.Set(k, v)
	}
	return out
}

// limitedWriter keeps the first n bytes and drops the rest.
type limitedWriter struct {
	w io.Writer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.n > 0 {
		k := min(len(p), l.n)
		_, _ = l.w.Write(p[:k])
		l.n -= k
	}
	return len(p), nil
}
