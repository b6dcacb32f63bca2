package sql

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/conffile"
)

// Dovecot 2.3's defaults (src/lib-sql/sql-api-private.h, driver-mysql.c).
const (
	defaultConnectTimeout = 5 * time.Second  // SQL_CONNECT_TIMEOUT_SECS
	defaultReadTimeout    = 30 * time.Second // MYSQL_DEFAULT_READ_TIMEOUT_SECS
	defaultWriteTimeout   = 30 * time.Second // MYSQL_DEFAULT_WRITE_TIMEOUT_SECS
	defaultMaxConns       = 5                // SQL_DEFAULT_CONNECTION_LIMIT, per host
	defaultPort           = 3306
	// defaultSocket is where libmariadb (which Debian's dovecot-mysql
	// uses) connects for host=localhost: MARIADB_UNIX_ADDR on Debian.
	defaultSocket = "/run/mysqld/mysqld.sock"
)

// connectOpts is a parsed connect string (driver-sqlpool.c takes host= and
// maxconns=, driver-mysql.c the rest), completed from the option file.
type connectOpts struct {
	hosts          []string // in the order given; "/path" is a unix socket
	port           int      // 0: not given
	user           string
	password       string // never logged
	dbname         string
	clientFlags    uint64 // accepted, unused (the Go driver sets its own)
	connectTimeout time.Duration
	readTimeout    time.Duration
	writeTimeout   time.Duration
	sslCert        string
	sslKey         string
	sslCA          string
	sslCAPath      string
	sslCipher      string
	sslVerify      bool // ssl_verify_server_cert; Dovecot 2.3.19's default is yes
	optionFile     string
	optionGroup    string
	socket         string // from the option file: the socket for host=localhost
	maxConns       int    // 0: not given
}

// parseConnect parses Dovecot's mysql connect string: space-separated
// key=value words. Errors name the key or the word's position, never the
// value, because the value may be the password.
//
// Deviation from Dovecot 2.3 (which has no quoting here, and documents
// "you can't use spaces in parameters"): a value that starts with " or '
// runs to the matching unescaped quote, with backslash escapes, so
// password="a b" works. A Dovecot file with literal quote characters at the
// start of a value would change meaning; working Dovecot configurations
// have none there.
func parseConnect(s string) (*connectOpts, error) {
	o := &connectOpts{
		connectTimeout: defaultConnectTimeout,
		readTimeout:    defaultReadTimeout,
		writeTimeout:   defaultWriteTimeout,
		sslCipher:      "HIGH",
		sslVerify:      true,
	}
	words, err := splitConnect(s)
	if err != nil {
		return nil, err
	}
	for n, w := range words {
		name, value, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("connect: word %d has no '=' (Dovecot: \"Missing value in connect string\"; quote values that contain spaces)", n+1)
		}
		switch name {
		case "host", "hostaddr":
			if value == "" {
				return nil, fmt.Errorf("connect: empty %s", name)
			}
			o.hosts = append(o.hosts, value)
		case "maxconns":
			v, err := parseUint(value)
			if err != nil || v > maxPoolSize {
				return nil, fmt.Errorf("connect: invalid value for maxconns: %q", value)
			}
			o.maxConns = int(v)
		case "port":
			p, err := strconv.ParseUint(value, 10, 16)
			if err != nil || p == 0 {
				return nil, fmt.Errorf("connect: invalid port number: %q", value)
			}
			o.port = int(p)
		case "user":
			o.user = value
		case "password":
			o.password = value
		case "dbname":
			o.dbname = value
		case "client_flags":
			v, err := parseUint(value)
			if err != nil {
				return nil, fmt.Errorf("connect: invalid client flags: %q", value)
			}
			o.clientFlags = v
		case "connect_timeout", "read_timeout", "write_timeout":
			v, err := parseUint(value)
			if err != nil || v > 24*3600 {
				return nil, fmt.Errorf("connect: invalid %s: %q (seconds)", name, value)
			}
			d := time.Duration(v) * time.Second
			switch name {
			case "connect_timeout":
				if d == 0 {
					d = defaultConnectTimeout // libmysqlclient: 0 is its default
				}
				o.connectTimeout = d
			case "read_timeout":
				o.readTimeout = d
			default:
				o.writeTimeout = d
			}
		case "ssl_cert":
			o.sslCert = value
		case "ssl_key":
			o.sslKey = value
		case "ssl_ca":
			o.sslCA = value
		case "ssl_ca_path":
			o.sslCAPath = value
		case "ssl_cipher":
			o.sslCipher = value
		case "ssl_verify_server_cert":
			switch value { // Dovecot compares exactly
			case "yes":
				o.sslVerify = true
			case "no":
				o.sslVerify = false
			default:
				return nil, fmt.Errorf("connect: invalid boolean for ssl_verify_server_cert: %q", value)
			}
		case "option_file":
			o.optionFile = value
		case "option_group":
			o.optionGroup = value
		default:
			return nil, fmt.Errorf("connect: unknown connect string: %s", truncateForError(name))
		}
	}
	if len(o.hosts) == 0 && o.optionFile == "" {
		return nil, errors.New("connect: no hosts given in connect string")
	}
	return o, nil
}

// parseUint is Dovecot's str_to_uint: decimal digits only.
func parseUint(s string) (uint64, error) {
	if s == "" || strings.TrimLeft(s, "0123456789") != "" {
		return 0, errors.New("not a number")
	}
	return strconv.ParseUint(s, 10, 32)
}

// splitConnect splits on blanks (Dovecot's t_strsplit_spaces), except
// inside a quoted value (see parseConnect).
func splitConnect(s string) ([]string, error) {
	blank := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
	var words []string
	for i := 0; i < len(s); {
		if blank(s[i]) {
			i++
			continue
		}
		var w strings.Builder
		sawEq, valueStart := false, false
		for i < len(s) && !blank(s[i]) {
			c := s[i]
			if valueStart && (c == '"' || c == '\'') {
				valueStart = false
				closed := false
				for i++; i < len(s); i++ {
					if s[i] == '\\' && i+1 < len(s) {
						i++
					} else if s[i] == c {
						closed = true
						i++
						break
					}
					w.WriteByte(s[i])
				}
				if !closed {
					return nil, fmt.Errorf("connect: word %d: unterminated quote", len(words)+1)
				}
				continue
			}
			valueStart = false
			w.WriteByte(c)
			i++
			if c == '=' && !sawEq {
				sawEq, valueStart = true, true
			}
		}
		words = append(words, w.String())
	}
	return words, nil
}

// applyOptionFile completes o from a my.cnf-style option file, as
// libmysqlclient's MYSQL_READ_DEFAULT_FILE/GROUP do: the connect string's
// own values win; the file fills what it left out.
func (o *connectOpts) applyOptionFile() error {
	if o.optionFile == "" {
		return nil
	}
	group := o.optionGroup
	if group == "" {
		group = "client"
	}
	opts, err := readOptionFile(o.optionFile, []string{"client", "client-server", "client-mariadb", group}, 0)
	if err != nil {
		return err
	}
	get := func(keys ...string) (string, bool) {
		for _, k := range keys {
			if v, ok := opts[k]; ok {
				return v, true
			}
		}
		return "", false
	}
	if len(o.hosts) == 0 {
		if v, ok := get("host"); ok && v != "" {
			o.hosts = append(o.hosts, v)
		}
	}
	if o.port == 0 {
		if v, ok := get("port"); ok {
			p, err := strconv.ParseUint(v, 10, 16)
			if err != nil || p == 0 {
				return fmt.Errorf("option file %s: invalid port %q", o.optionFile, v)
			}
			o.port = int(p)
		}
	}
	if v, ok := get("socket"); ok {
		o.socket = v
	}
	if o.user == "" {
		o.user, _ = get("user")
	}
	if o.password == "" {
		o.password, _ = get("password")
	}
	if o.dbname == "" {
		o.dbname, _ = get("database")
	}
	if o.sslCA == "" {
		o.sslCA, _ = get("ssl_ca")
	}
	if o.sslCAPath == "" {
		o.sslCAPath, _ = get("ssl_capath")
	}
	if o.sslCert == "" {
		o.sslCert, _ = get("ssl_cert")
	}
	if o.sslKey == "" {
		o.sslKey, _ = get("ssl_key")
	}
	return nil
}

// Bounds of the my.cnf reader (option_file=), which MySQL does not have.
const (
	maxOptionFile     = 4 << 20 // bytes per file
	maxOptionIncludes = 16      // nesting depth of !include / !includedir
)

// readOptionFile reads the groups of a my.cnf file into one map (later
// lines win), with !include and !includedir. Keys are normalised to use
// '_' (my.cnf accepts ssl-ca and ssl_ca alike). A bare key ("ssl") gets
// the value "1".
func readOptionFile(path string, groups []string, depth int) (map[string]string, error) {
	if depth > maxOptionIncludes {
		return nil, fmt.Errorf("option file %s: includes nested too deep", path)
	}
	data, err := conffile.ReadRegularFile(path, maxOptionFile)
	if err != nil {
		return nil, fmt.Errorf("option file: %w", err)
	}
	want := map[string]bool{}
	for _, g := range groups {
		want[g] = true
	}
	out := map[string]string{}
	merge := func(m map[string]string) {
		for k, v := range m {
			out[k] = v
		}
	}
	in := false
	for n, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if strings.HasPrefix(line, "!includedir") {
			dir := strings.TrimSpace(strings.TrimPrefix(line, "!includedir"))
			files, _ := filepath.Glob(filepath.Join(dir, "*.cnf"))
			for _, f := range files { // Glob sorts
				m, err := readOptionFile(f, groups, depth+1)
				if err != nil {
					return nil, err
				}
				merge(m)
			}
			continue
		}
		if strings.HasPrefix(line, "!include") {
			m, err := readOptionFile(strings.TrimSpace(strings.TrimPrefix(line, "!include")), groups, depth+1)
			if err != nil {
				return nil, err
			}
			merge(m)
			continue
		}
		if line[0] == '[' {
			end := strings.IndexByte(line, ']')
			if end < 0 {
				return nil, fmt.Errorf("option file %s:%d: malformed group header", path, n+1)
			}
			in = want[strings.TrimSpace(line[1:end])]
			continue
		}
		if !in {
			continue
		}
		k, v, hasValue := strings.Cut(line, "=")
		k = strings.ReplaceAll(strings.TrimSpace(k), "-", "_")
		if !hasValue {
			out[k] = "1"
			continue
		}
		out[k] = optionValue(strings.TrimSpace(v))
	}
	return out, nil
}

// optionValue decodes a my.cnf value: quotes are removed, and the escapes
// \b \t \n \r \\ \s (space) \" \' are decoded; an unquoted value ends at
// a '#' comment.
func optionValue(v string) string {
	if n := len(v); n >= 2 && (v[0] == '"' || v[0] == '\'') && v[n-1] == v[0] {
		v = v[1 : n-1]
	} else if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	if !strings.Contains(v, `\`) {
		return v
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			switch v[i] {
			case 'b':
				c = '\b'
			case 't':
				c = '\t'
			case 'n':
				c = '\n'
			case 'r':
				c = '\r'
			case 's':
				c = ' '
			default:
				c = v[i]
			}
		}
		b.WriteByte(c)
	}
	return b.String()
}

// endpoint is one host= of the connect string, resolved to what the Go
// driver dials.
type endpoint struct {
	net  string // "tcp" or "unix"
	addr string // host:port or socket path
}

func (e endpoint) String() string { return e.addr }

// endpoints resolves the hosts as libmysqlclient does: "/path" is a unix
// socket, and so is "localhost" (the socket from the option file, else
// $MYSQL_UNIX_PORT, else the distribution default), which is why Dovecot
// users with 'user'@'localhost' accounts keep working. No host at all
// (allowed with option_file) means localhost.
func (o *connectOpts) endpoints() []endpoint {
	hosts := o.hosts
	if len(hosts) == 0 {
		hosts = []string{"localhost"}
	}
	port := o.port
	if port == 0 {
		port = defaultPort
	}
	var eps []endpoint
	for _, h := range hosts {
		switch {
		case strings.HasPrefix(h, "/"):
			eps = append(eps, endpoint{"unix", h})
		case h == "localhost":
			sock := o.socket
			if sock == "" {
				sock = os.Getenv("MYSQL_UNIX_PORT")
			}
			if sock == "" {
				sock = defaultSocket
			}
			eps = append(eps, endpoint{"unix", sock})
		default:
			eps = append(eps, endpoint{"tcp", net.JoinHostPort(strings.Trim(h, "[]"), strconv.Itoa(port))})
		}
	}
	return eps
}

// dbUser is the login name: the connect string's, else the OS user, as
// libmysqlclient does.
func (o *connectOpts) dbUser() string {
	if o.user != "" {
		return o.user
	}
	if u, err := user.Current(); err == nil {
		return u.Username
	}
	return ""
}

// tlsConfig builds the client TLS configuration. As in Dovecot's mysql
// driver, TLS is on when ssl_ca or ssl_ca_path is set. The server chain is
// always verified against those CAs (never the system roots, which would
// let any public CA vouch for the database); the name in the certificate
// is checked against the host unless ssl_verify_server_cert=no (Dovecot
// 2.3.19's default is yes). Files are read once, here: a missing or bad
// file is a configuration error, not a failure on every lookup.
func (o *connectOpts) tlsConfig() (*tls.Config, error) {
	if o.sslCA == "" && o.sslCAPath == "" {
		if o.sslCert != "" || o.sslKey != "" {
			return nil, errors.New("connect: ssl_cert/ssl_key need ssl_ca or ssl_ca_path (Dovecot enables TLS only with a CA)")
		}
		return nil, nil
	}
	pool := x509.NewCertPool()
	n := 0
	if o.sslCA != "" {
		pem, err := os.ReadFile(o.sslCA)
		if err != nil {
			return nil, fmt.Errorf("connect: ssl_ca: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("connect: ssl_ca %s: no PEM certificate in it", o.sslCA)
		}
		n++
	}
	if o.sslCAPath != "" {
		ents, err := os.ReadDir(o.sslCAPath)
		if err != nil {
			return nil, fmt.Errorf("connect: ssl_ca_path: %w", err)
		}
		for _, e := range ents {
			if e.IsDir() {
				continue
			}
			pem, err := os.ReadFile(filepath.Join(o.sslCAPath, e.Name()))
			if err == nil && pool.AppendCertsFromPEM(pem) {
				n++
			}
		}
		if n == 0 {
			return nil, fmt.Errorf("connect: ssl_ca_path %s: no PEM certificates in it", o.sslCAPath)
		}
	}
	cfg := &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	if o.sslCert != "" || o.sslKey != "" {
		if o.sslCert == "" || o.sslKey == "" {
			return nil, errors.New("connect: ssl_cert and ssl_key must be given together")
		}
		cert, err := tls.LoadX509KeyPair(o.sslCert, o.sslKey)
		if err != nil {
			return nil, fmt.Errorf("connect: ssl_cert/ssl_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	if !o.sslVerify {
		// Chain yes, name no: crypto/tls can only turn both off, so the
		// chain is verified here by hand.
		cfg.InsecureSkipVerify = true
		cfg.VerifyPeerCertificate = func(raw [][]byte, _ [][]*x509.Certificate) error {
			return verifyChain(raw, pool)
		}
	}
	return cfg, nil
}

// verifyChain checks the server's chain against roots without a name check.
func verifyChain(raw [][]byte, roots *x509.CertPool) error {
	if len(raw) == 0 {
		return errors.New("tls: server sent no certificate")
	}
	certs := make([]*x509.Certificate, len(raw))
	for i, r := range raw {
		c, err := x509.ParseCertificate(r)
		if err != nil {
			return fmt.Errorf("tls: bad server certificate: %w", err)
		}
		certs[i] = c
	}
	inter := x509.NewCertPool()
	for _, c := range certs[1:] {
		inter.AddCert(c)
	}
	_, err := certs[0].Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}})
	return err
}

// ConnectWords splits a mysql or pgsql connect string into its
// keyword/value pairs, quotes removed, as the driver reads them (authd
// convert writes them as Dovecot 2.4 settings). Errors never quote a value.
func ConnectWords(s string) ([][2]string, error) {
	words, err := splitConnect(s)
	if err != nil {
		return nil, err
	}
	out := make([][2]string, 0, len(words))
	for n, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			return nil, fmt.Errorf("connect: word %d has no '='", n+1)
		}
		out = append(out, [2]string{k, v})
	}
	return out, nil
}
