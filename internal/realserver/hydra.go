package realserver

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed" // the module Hydra is built from
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Ory Hydra (github.com/ory/hydra/v2) is the OAuth2/OpenID Connect server
// the oauth2 passdb is tested against: a maintained, certified provider,
// built from the Go module proxy like every other Go dependency (Debian
// packages none of Hydra, Dex or Keycloak). It runs with its in-memory
// store (DSN=memory, SQLite), serves the client-credentials grant, RFC 7662
// introspection, RFC 7009 revocation and its signing keys as a JWKS, and
// issues opaque or JWT access tokens per client. docs/testing.md §8.5 says
// how it is built and what the tests rely on.

// HydraVersion is the Hydra release hydra.mod pins.
const HydraVersion = "v2.3.0"

var (
	//go:embed hydra.mod
	hydraMod []byte
	//go:embed hydra.sum
	hydraSum []byte
)

// hydraBinaryPath is where HydraBinary keeps the binary for this
// hydra.mod and hydra.sum.
func hydraBinaryPath(cacheDir string) string {
	sum := sha256.Sum256(append(append([]byte{}, hydraMod...), hydraSum...))
	return filepath.Join(cacheDir, "hydra-"+HydraVersion+"-"+hex.EncodeToString(sum[:6]), "hydra")
}

// HydraBinary returns the path of a Hydra binary, built on first use with
// the go command (cgo: Hydra's in-memory store is SQLite) from the
// embedded module and cached in cacheDir (DefaultRootCache when empty and
// running as root, else the user's cache directory). The build takes a
// few minutes once; a file lock makes parallel test binaries build it once.
// Without a go command or a C compiler the error wraps ErrUnavailable.
func HydraBinary(ctx context.Context, cacheDir string) (string, error) {
	if cacheDir == "" {
		cacheDir = DefaultRootCache
		if os.Geteuid() != 0 {
			d, err := os.UserCacheDir()
			if err != nil {
				return "", Unavailable("no cache directory for the Hydra binary: %v", err)
			}
			cacheDir = filepath.Join(d, "authd-testenv")
		}
	}
	bin := hydraBinaryPath(cacheDir)
	if isExecutable(bin) {
		return bin, nil
	}
	tools, err := lookBins("go", "gcc")
	if err != nil {
		return "", err
	}
	if err := Mkdirs(cacheDir); err != nil {
		return "", err
	}
	unlock, err := lockFile(ctx, filepath.Dir(bin)+".lock")
	if err != nil {
		return "", err
	}
	defer unlock()
	if isExecutable(bin) { // built by whoever held the lock before us
		return bin, nil
	}
	return bin, buildHydra(ctx, tools[0], bin)
}

// buildHydra builds into a scratch directory next to bin's and renames it
// into place, so that a directory under bin's name always holds a whole
// binary.
func buildHydra(ctx context.Context, gobin, bin string) error {
	final := filepath.Dir(bin)
	scratch, err := os.MkdirTemp(filepath.Dir(final), ".hydra-build-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	if err := WriteFile(filepath.Join(scratch, "go.mod"), hydraMod); err != nil {
		return err
	}
	if err := WriteFile(filepath.Join(scratch, "go.sum"), hydraSum); err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, gobin, "build", "-trimpath", "-tags", "sqlite,sqlite_omit_load_extension",
		"-o", filepath.Join(scratch, "hydra"), "github.com/ory/hydra/v2")
	cmd.Dir = scratch
	cmd.Env = append(CleanEnv(), "CGO_ENABLED=1", "GOFLAGS=-mod=readonly", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building Hydra %s: %w\n%s", HydraVersion, err, out)
	}
	if err := os.Rename(scratch, final); err != nil {
		return fmt.Errorf("installing the Hydra binary: %w", err)
	}
	return os.Chmod(final, 0o755)
}

// HydraOptions configures StartHydra.
type HydraOptions struct {
	Instance
	// Bin is the Hydra binary (HydraBinary).
	Bin string
}

// Hydra is a running Hydra: its public endpoints (token, revocation,
// JWKS) and its admin endpoints (clients, introspection) on two loopback
// ports, with an in-memory store that a restart empties.
type Hydra struct {
	server
	PublicURL string // http://127.0.0.1:PORT, also the issuer (with "/")
	AdminURL  string
	Log       string
	http      *http.Client
}

// StartHydra starts "hydra serve all" and returns once its admin health
// endpoint says it is ready.
func StartHydra(ctx context.Context, o HydraOptions) (*Hydra, error) {
	if err := Mkdirs(o.Dir); err != nil {
		return nil, err
	}
	pub, err := o.port()
	if err != nil {
		return nil, err
	}
	adm, err := o.port()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 24)
	_, _ = rand.Read(secret)
	h := &Hydra{
		PublicURL: "http://" + loopback(pub), AdminURL: "http://" + loopback(adm),
		Log: filepath.Join(o.Dir, "hydra.log"), http: &http.Client{Timeout: 30 * time.Second},
	}
	env := CleanEnv(
		"DSN=memory", "SECRETS_SYSTEM="+hex.EncodeToString(secret),
		"URLS_SELF_ISSUER="+h.PublicURL+"/",
		"SERVE_PUBLIC_HOST=127.0.0.1", "SERVE_PUBLIC_PORT="+strconv.Itoa(pub),
		"SERVE_ADMIN_HOST=127.0.0.1", "SERVE_ADMIN_PORT="+strconv.Itoa(adm),
		"STRATEGIES_ACCESS_TOKEN=opaque", "TTL_ACCESS_TOKEN=1h", "LOG_LEVEL=info", "SQA_OPT_OUT=true",
	)
	probe := func(ctx context.Context) error { return h.ready(ctx) }
	h.grace = 10 * time.Second
	h.launch = func(ctx context.Context) (*Proc, error) {
		opts := o.procOptions("hydra", h.Log)
		opts.Env = env
		p, err := StartProc(opts, o.Bin, "serve", "all", "--dev", "--sqa-opt-out")
		if err != nil {
			return nil, err
		}
		if err := p.WaitReady(ctx, 90*time.Second, probe); err != nil {
			p.Stop(syscall.SIGKILL, time.Second)
			return nil, err
		}
		return p, nil
	}
	if err := h.run(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Hydra) ready(ctx context.Context) error {
	_, err := h.call(ctx, http.MethodGet, h.AdminURL+"/health/ready", "", nil)
	return err
}

// IntrospectionURL is the RFC 7662 endpoint (POST only).
func (h *Hydra) IntrospectionURL() string { return h.AdminURL + "/admin/oauth2/introspect" }

// Issuer is the iss of Hydra's tokens.
func (h *Hydra) Issuer() string { return h.PublicURL + "/" }

// HydraClient is an OAuth2 client registered with CreateClient. Its ID is
// the sub of the client-credentials tokens it obtains.
type HydraClient struct {
	ID, Secret string
	Scope      string // space-separated scopes it may ask for
	// JWT makes its access tokens signed JWTs (Hydra's access_token_strategy
	// "jwt"); else they are opaque.
	JWT bool
	// Lifespan of its access tokens; zero means Hydra's (one hour).
	Lifespan time.Duration
}

// CreateClient registers a client for the client-credentials grant.
func (h *Hydra) CreateClient(ctx context.Context, c HydraClient) error {
	body := map[string]any{
		"client_id": c.ID, "client_secret": c.Secret, "scope": c.Scope,
		"grant_types": []string{"client_credentials"}, "token_endpoint_auth_method": "client_secret_post",
		"access_token_strategy": "opaque",
	}
	if c.JWT {
		body["access_token_strategy"] = "jwt"
	}
	if c.Lifespan > 0 {
		body["client_credentials_grant_access_token_lifespan"] = c.Lifespan.String()
	}
	b, err := json.Marshal(body)
	if err != nil {
		return err
	}
	_, err = h.call(ctx, http.MethodPost, h.AdminURL+"/admin/clients", "application/json", b)
	return err
}

// Token obtains an access token with the client-credentials grant.
func (h *Hydra) Token(ctx context.Context, c HydraClient) (string, error) {
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID}, "client_secret": {c.Secret}, "scope": {c.Scope}}
	b, err := h.call(ctx, http.MethodPost, h.PublicURL+"/oauth2/token", "application/x-www-form-urlencoded", []byte(form.Encode()))
	if err != nil {
		return "", err
	}
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.Unmarshal(b, &tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("hydra: token endpoint answered without an access_token (%v)", err)
	}
	return tok.AccessToken, nil
}

// Revoke revokes an access token of client c (RFC 7009).
func (h *Hydra) Revoke(ctx context.Context, c HydraClient, token string) error {
	form := url.Values{"token": {token}, "client_id": {c.ID}, "client_secret": {c.Secret}}
	_, err := h.call(ctx, http.MethodPost, h.PublicURL+"/oauth2/revoke", "application/x-www-form-urlencoded", []byte(form.Encode()))
	return err
}

// JWKS returns the public keys that sign Hydra's JWTs, as JSON.
func (h *Hydra) JWKS(ctx context.Context) ([]byte, error) {
	return h.call(ctx, http.MethodGet, h.PublicURL+"/.well-known/jwks.json", "", nil)
}

// call makes one request and returns the body of a 2xx answer; any other
// status is an error that quotes the (bounded) body.
func (h *Hydra) call(ctx context.Context, method, u, ctype string, body []byte) ([]byte, error) {
	var r io.Reader
	if body != nil {
		r = strings.NewReader(string(body))
	}
	req, err := http.NewRequestWithContext(ctx, method, u, r)
	if err != nil {
		return nil, err
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("hydra: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("hydra: %s %s: %w", method, u, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("hydra: %s %s: %w", method, u, &hydraStatusError{resp.StatusCode, string(b)})
	}
	return b, nil
}

type hydraStatusError struct {
	code int
	body string
}

func (e *hydraStatusError) Error() string {
	return "HTTP " + strconv.Itoa(e.code) + ": " + e.body
}
