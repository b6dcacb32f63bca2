package realserver

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"time"
)

// ErrConfigRefused is matched (errors.Is) by StartAuthd's error when
// "authd check" rejects the configuration: this authd cannot run it at
// all (a passdb driver it does not have, a setting it does not know), as
// opposed to a start that failed.
var ErrConfigRefused = errors.New("authd refuses the configuration")

// AuthdOptions configures StartAuthd.
type AuthdOptions struct {
	Instance
	// Bin is the authd binary.
	Bin string
	// Config is authd's configuration (Dovecot's syntax). StartAuthd writes
	// its defaults before it (auth-client mode 0666, so unprivileged
	// clients can connect), and after it base_dir (Dir/run) and the metrics
	// listener it uses to see that authd is ready (a unix socket in Dir):
	// those two cannot be overridden.
	Config string
}

// Authd is an authd daemon started from a binary. Stop lets it finish what
// is in flight (its shutdown_timeout, 10 s by default) before SIGKILL.
type Authd struct {
	Dir     string // instance directory
	BaseDir string // base_dir: auth-client, auth-master, auth-userdb, …
	Conf    string // authd.conf
	Log     string // authd's stdout and stderr
	// MetricsSocket is the unix socket of the metrics { } listener
	// (/metrics, /healthz, /readyz).
	MetricsSocket string

	server
}

// StartAuthd writes the configuration, has "authd check" validate it, and
// starts "authd serve". It returns once authd's /readyz answers 200 (a
// configuration is served and no backend has failed, docs/metrics.md; authd
// opens the metrics listener only after its sockets have their handlers)
// and auth-client completes a handshake. Readiness is read from authd's
// interfaces, never from its log. The caller must Stop it.
func StartAuthd(ctx context.Context, o AuthdOptions) (*Authd, error) {
	if o.Bin == "" {
		return nil, errors.New("StartAuthd: no authd binary")
	}
	a := &Authd{
		Dir: o.Dir, BaseDir: filepath.Join(o.Dir, "run"), Conf: filepath.Join(o.Dir, "authd.conf"),
		Log: filepath.Join(o.Dir, "authd.log"), MetricsSocket: filepath.Join(o.Dir, "metrics.sock"),
		server: server{grace: 15 * time.Second},
	}
	if err := Mkdirs(o.Dir, a.BaseDir); err != nil {
		return nil, err
	}
	conf := `# realserver defaults; the config below may override them
service auth {
  unix_listener auth-client {
    mode = 0666
  }
}

# caller's config
` + o.Config + fmt.Sprintf(`

# private paths and the readiness endpoint (last, so they win)
base_dir = %s
metrics {
  listen = unix:%s
}
`, a.BaseDir, a.MetricsSocket)
	if err := WriteFile(a.Conf, []byte(conf)); err != nil {
		return nil, err
	}
	// The exit status of "authd check" says whether this authd can run the
	// configuration at all; its output is only shown.
	if out, err := RunCmd(ctx, CleanEnv(), "", o.Bin, "check", "-c", a.Conf); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("%w: %s", ErrConfigRefused, checkErrors(out))
	}
	a.launch = func(ctx context.Context) (*Proc, error) {
		return startAndWait(ctx, o.Instance, "authd", a.Log, 20*time.Second, a.ready,
			[]string{o.Bin, "serve", "-c", a.Conf})
	}
	if err := a.run(ctx); err != nil {
		return nil, err
	}
	return a, nil
}

// checkErrors is what "authd check" said, without the effective
// configuration it prints on success, on one line per error.
func checkErrors(out string) string {
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	if len(lines) > 5 {
		lines = append(lines[:5], "…")
	}
	return strings.Join(lines, "; ")
}

// ready is the readiness probe: /readyz, then a handshake on auth-client.
func (a *Authd) ready(ctx context.Context) error {
	if err := a.readyz(ctx); err != nil {
		return err
	}
	return AuthHandshake(ctx, a.Socket("auth-client"))
}

// readyz asks the metrics listener's /readyz.
func (a *Authd) readyz(ctx context.Context) error {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", a.MetricsSocket)
		},
		DisableKeepAlives: true,
	}
	defer tr.CloseIdleConnections()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://authd/readyz", nil)
	if err != nil {
		return err
	}
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/readyz: %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// Socket returns the path of a socket in base_dir, e.g. "auth-client".
func (a *Authd) Socket(name string) string { return filepath.Join(a.BaseDir, name) }
