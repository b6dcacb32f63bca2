package oauth2

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/authd-project/authd/backends"
	"github.com/authd-project/authd/internal/tabescape"
)

// The keys that sign locally validated JWTs come from a dict, as in
// Dovecot 2.3 (oauth2-jwt.c): the key "shared/AZP/ALG/KID" (azp and kid
// "default" when the token has none, '/' and '%' in them escaped as %2f
// and %25), whose value is a base64 HMAC secret for HS* or a public key
// (PEM or JWK) for RS*, PS* and ES*. Two dict kinds are read:
//
//	fs:posix:prefix=/etc/dovecot/keys/   one file per key: PREFIX + "AZP/ALG/KID"
//	file:/etc/dovecot/keys.dict          one file of alternating key and value lines
//
// Attacker-chosen parts (kid, azp) never leave the prefix: the escaping
// takes out '/', and path components made only of dots are escaped as
// Dovecot's fs dict does; alg is checked against the allowlist before any
// lookup.

const (
	maxKeyFile  = 64 << 10 // one key file
	maxDictFile = 4 << 20  // a whole file: dict
	maxKeyCache = 1024
)

var errKeyNotFound = errors.New("key not found")

// keyDict looks up a key's text.
type keyDict interface {
	lookup(key string) (string, error)
}

// parseKeyDict reads a local_validation_key_dict value.
func parseKeyDict(uri string) (keyDict, error) {
	switch {
	case strings.HasPrefix(uri, "fs:posix:"):
		var prefix string
		for _, arg := range strings.Split(strings.TrimPrefix(uri, "fs:posix:"), ":") {
			if v, ok := strings.CutPrefix(arg, "prefix="); ok {
				prefix = v
			}
		}
		if prefix == "" {
			return nil, fmt.Errorf("%w: oauth2: local_validation_key_dict: fs:posix: needs prefix=DIR/", backends.ErrConfig)
		}
		return fsDict{prefix: prefix}, nil
	case strings.HasPrefix(uri, "file:"):
		path := strings.TrimPrefix(uri, "file:")
		if path == "" {
			return nil, fmt.Errorf("%w: oauth2: local_validation_key_dict: file: needs a path", backends.ErrConfig)
		}
		return &fileDict{path: path}, nil
	}
	return nil, fmt.Errorf("%w: oauth2: local_validation_key_dict: only fs:posix:prefix=DIR/ and file:PATH dicts are supported", backends.ErrConfig)
}

// fsDict is Dovecot's "fs:posix:prefix=…" dict: one file per key.
type fsDict struct{ prefix string }

// lookup reads PREFIX + "AZP/ALG/KID". The name is opened through an
// os.Root on the prefix's directory: besides the escaping (no '/' inside a
// component, no component of dots only), the kernel-checked root refuses
// any name that would resolve outside it, through ".." or a symbolic link,
// so a token's kid or azp can select a key file but never name another
// file. Key files must therefore live inside that directory.
func (d fsDict) lookup(key string) (string, error) {
	// Escape before the "shared/" prefix goes, so that the first
	// component (azp) is escaped too.
	rest, ok := strings.CutPrefix(escapeDots(key), "shared/")
	if !ok || strings.IndexByte(rest, 0) >= 0 {
		return "", errKeyNotFound
	}
	// Dovecot appends the key to the prefix as text: "DIR/" gives
	// DIR/AZP/…, "DIR/x-" gives DIR/x-AZP/….
	dir, base := filepath.Split(d.prefix)
	if dir == "" {
		dir = "."
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return "", fmt.Errorf("key dict: %w", err)
	}
	defer root.Close()
	f, err := root.Open(base + rest)
	if errors.Is(err, fs.ErrNotExist) {
		return "", errKeyNotFound
	}
	if err != nil {
		return "", fmt.Errorf("key dict: %w", err)
	}
	defer f.Close()
	b, err := readBoundedFile(f, maxKeyFile)
	if err != nil {
		return "", fmt.Errorf("key dict: %w", err)
	}
	return string(b), nil
}

// escapeDots rewrites path components made only of dots ("", ".", "..")
// after a '/' as Dovecot's fs dict does (fs_dict_escape_key): "/." + dots
// becomes "/..." + the rest, so no component can name a parent.
func escapeDots(key string) string {
	var b strings.Builder
	for {
		i := strings.Index(key, "/.")
		if i < 0 {
			b.WriteString(key)
			return b.String()
		}
		b.WriteString(key[:i])
		j := i + 1
		for j < len(key) && key[j] == '.' {
			j++
		}
		if j == len(key) || key[j] == '/' {
			b.WriteString("/...")
		} else {
			b.WriteString("/.")
		}
		key = key[i+2:]
	}
}

// fileDict is Dovecot's "file:" dict: key and value on alternating lines,
// tab-escaped. It is read again when the file changes.
type fileDict struct {
	path string
	mu   sync.Mutex
	stat os.FileInfo
	vals map[string]string
}

func (d *fileDict) lookup(key string) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	st, err := os.Stat(d.path)
	if err != nil {
		return "", fmt.Errorf("key dict: %w", err)
	}
	if d.stat == nil || !os.SameFile(st, d.stat) || st.ModTime() != d.stat.ModTime() || st.Size() != d.stat.Size() {
		b, err := readBounded(d.path, maxDictFile)
		if err != nil {
			return "", fmt.Errorf("key dict: %w", err)
		}
		d.vals, d.stat = parseFileDict(b), st
	}
	v, ok := d.vals[key]
	if !ok {
		return "", errKeyNotFound
	}
	return v, nil
}

func parseFileDict(b []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxDictFile)
	for sc.Scan() {
		k := tabescape.Unescape(sc.Text())
		if !sc.Scan() {
			break
		}
		m[k] = tabescape.Unescape(sc.Text())
	}
	return m
}

// escapeIdentifier escapes '/' and '%' in a kid or azp as %2f and %25
// (Dovecot's escape_identifier), so that neither can add a path level.
func escapeIdentifier(s string) string {
	r := strings.NewReplacer("%", "%25", "/", "%2f")
	return r.Replace(s)
}

// keyCache keeps loaded keys until a reload, as Dovecot's key cache does.
// Only keys that were found are kept, and at most maxKeyCache of them.
type keyCache struct {
	mu   sync.Mutex
	keys map[string]any
}

func (c *keyCache) get(id string) (any, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	k, ok := c.keys[id]
	return k, ok
}

func (c *keyCache) put(id string, k any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.keys == nil || len(c.keys) >= maxKeyCache {
		c.keys = map[string]any{}
	}
	c.keys[id] = k
}

func (c *keyCache) flush() {
	c.mu.Lock()
	c.keys = nil
	c.mu.Unlock()
}

// decodeHMACKey decodes a base64 HMAC secret as Dovecot does (padding
// optional, surrounding whitespace ignored).
func decodeHMACKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		b, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(s, "="))
	}
	if err != nil || len(b) == 0 {
		return nil, errors.New("invalid base64 encoded key")
	}
	return b, nil
}
