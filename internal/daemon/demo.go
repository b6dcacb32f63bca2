package daemon

import (
	"bytes"
	_ "embed"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/authd-project/authd/internal/config"
)

// The demo: a passwd-file with a few users and sockets under ./run, so
// that `authd` (or `make run`) works on a fresh machine with nothing
// installed.

//go:embed demo/authd.conf
var demoConf []byte

//go:embed demo/demo-users
var demoUsers []byte

// demoConfig writes the demo users under ./run and loads the demo config.
func demoConfig() (*config.Config, error) {
	run, err := filepath.Abs("run")
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(filepath.Join(run, "demo-users"), demoUsers, 0o644); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	// base_dir must be absolute; the demo lives wherever authd was started.
	conf := bytes.ReplaceAll(demoConf, []byte("@RUN@"), []byte(run))
	return config.LoadBytes("(built-in demo config)", conf)
}

func printDemo(w io.Writer, cfg *config.Config) {
	client := filepath.Join(cfg.BaseDir, "auth-client")
	fmt.Fprintf(w, `authd is running on its built-in demo configuration (no /etc/authd/authd.conf, no -c).
Sockets are in %s; demo users are in ./run/demo-users.

Try, from another terminal:
  go run ./cmd/authd test -a %s alice@example.com wonderland    # auth succeeded
  go run ./cmd/authd test -a %s alice@example.com wrong         # auth failed (after 2 s)
  doveadm auth test -a %s bob@example.com builder               # with Dovecot's own client

Stop with Ctrl-C.
`, cfg.BaseDir, client, client, client)
}
