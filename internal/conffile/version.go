package conffile

import (
	"bytes"
	"strings"
)

// ConfigVersionKey is the setting that makes a file Dovecot 2.4's: it must
// be the file's first setting.
const ConfigVersionKey = "dovecot_config_version"

// DetectVersion reports whether a main configuration file is written in
// Dovecot 2.4's language: Dovecot 2.4 requires dovecot_config_version to
// be the first setting, and 2.3 does not know it. It returns the setting's
// value and line; found is false for a file whose first setting is
// something else (a 2.3 file).
func DetectVersion(data []byte) (value string, line int, found bool) {
	for len(data) > 0 {
		line++
		var raw []byte
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			raw, data = data[:i], data[i+1:]
		} else {
			raw, data = data, nil
		}
		s := strings.TrimFunc(string(raw), func(r rune) bool { return r < 0x80 && isSpace(byte(r)) })
		if s == "" || s[0] == '#' {
			continue
		}
		key, rest, ok := strings.Cut(s, "=")
		if !ok || strings.TrimRight(key, " \t\v\f\r") != ConfigVersionKey {
			return "", line, false
		}
		v := strings.TrimSpace(rest)
		if i := strings.Index(v, " #"); i >= 0 && v[0] != '"' {
			v = strings.TrimSpace(v[:i])
		}
		return Unquote(v), line, true
	}
	return "", 0, false
}
