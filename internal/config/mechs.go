package config

import (
	"fmt"
	"strings"
)

// supportedMechanisms are the SASL mechanisms authd implements
// (docs/protocol.md §4).
var supportedMechanisms = map[string]bool{
	"PLAIN": true, "LOGIN": true, "CRAM-MD5": true, "DIGEST-MD5": true,
	"SCRAM-SHA-1": true, "SCRAM-SHA-256": true, "APOP": true, "ANONYMOUS": true,
	"EXTERNAL": true, "OAUTHBEARER": true, "XOAUTH2": true,
}

// dovecotOnlyMechanisms are mechanisms Dovecot 2.3 knows (or knew: SKEY,
// RPA and native NTLM were removed during 2.3) that authd does not offer.
var dovecotOnlyMechanisms = map[string]bool{
	"GSSAPI": true, "GSS-SPNEGO": true, "NTLM": true, "OTP": true, "SKEY": true, "RPA": true,
}

// parseMechanisms reads auth_mechanisms. Dovecot splits on spaces only;
// authd also accepts commas. Names are case-insensitive and upper-cased.
func parseMechanisms(v string) ([]string, error) {
	var out []string
	var bad []string
	for _, m := range splitList(v, " \t,") {
		m = strings.ToUpper(m)
		switch {
		case supportedMechanisms[m]:
			if !contains(out, m) {
				out = append(out, m)
			}
		case dovecotOnlyMechanisms[m]:
			bad = append(bad, fmt.Sprintf("mechanism %s is not supported by authd", m))
		default:
			bad = append(bad, fmt.Sprintf("unknown authentication mechanism %q", m))
		}
	}
	if len(bad) > 0 {
		return out, fmt.Errorf("%s", strings.Join(bad, "; "))
	}
	if len(out) == 0 {
		return out, fmt.Errorf("no authentication mechanisms configured")
	}
	return out, nil
}

// parsePassdbMechanisms reads a passdb's mechanisms filter. Dovecot splits
// it on spaces and commas and compares case-insensitively; "none" stands for
// lookups made without a mechanism. A name Dovecot knows but authd does not
// offer is harmless here (the passdb is simply never used for it), so only
// names unknown to both are errors.
func parsePassdbMechanisms(v string) ([]string, error) {
	var out []string
	for _, m := range splitList(v, " \t,") {
		m = strings.ToUpper(m)
		if !supportedMechanisms[m] && !dovecotOnlyMechanisms[m] && m != "NONE" {
			return nil, fmt.Errorf("unknown authentication mechanism %q", m)
		}
		if !contains(out, m) {
			out = append(out, m)
		}
	}
	return out, nil
}
