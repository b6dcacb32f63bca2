package engine

import (
	"fmt"
	"strings"
)

// Input bounds. Names and passwords past them are refused before anything
// else happens: no policy server check, no brute-force count, no lookup,
// no verification. The answer is the FAIL of a wrong password, released
// at the same fixed time after arrival as any failure (FinishAuth).
//
// No dummy verification is made for them, on purpose. The refusal
// depends only on the length of what the client sent, never on the
// account, so its cost tells the client nothing it did not know; and
// hashing the password is exactly what must not happen: SHA-crypt,
// PBKDF2 and the salted SHA schemes cost more the longer the password
// is (SHA512-CRYPT hashes it about 10,000 times at the default rounds), so
// a 12 KiB password would make every guess cost many ordinary logins.
const (
	// MaxPasswordLen bounds a password, far above any passphrase a
	// person types or a generator makes.
	MaxPasswordLen = 1024
	// MaxNameLen bounds a user name as sent (authentication id,
	// authorization id), far above any login name or e-mail address
	// (RFC 5321 bounds a mailbox to 254 bytes).
	MaxNameLen = 256
)

// tokenMech reports mechanisms whose "password" is a bearer token, which
// only the line limit bounds: a JWT access token often exceeds 1 KiB.
func tokenMech(mech string) bool {
	switch strings.ToUpper(mech) {
	case "OAUTHBEARER", "XOAUTH2":
		return true
	}
	return false
}

// checkLengths refuses a request whose names or password are over the
// bounds; ok is false when res is the answer. A long password with a
// name that processes gets the reply of that user's wrong password; a
// long name is not echoed back.
func (e *Engine) checkLengths(info *Info, authzid, authcid string, password []byte) (res Result, ok bool) {
	if res, ok := e.checkNames(info, authzid, authcid); !ok {
		return res, false
	}
	if len(password) <= MaxPasswordLen || (info != nil && tokenMech(info.Mech)) {
		return Result{}, true
	}
	res = Result{Status: StatusFail, Reason: fmt.Sprintf("password longer than %d bytes", MaxPasswordLen)}
	login, master := e.splitLogin(info, authzid, authcid)
	res.OrigUser = origName(authcid, master)
	if master != "" {
		login = master
	}
	if u, err := e.ProcessName(login, info); err == nil {
		res.User = u
	}
	return res, false
}

// checkNames refuses names over MaxNameLen, the certificate's name too
// when it replaces the one sent.
func (e *Engine) checkNames(info *Info, names ...string) (Result, bool) {
	if info != nil && e.set.UsernameFromCert && info.CertUsername != "" {
		names = append(names, info.CertUsername)
	}
	for _, n := range names {
		if len(n) > MaxNameLen {
			return Result{Status: StatusFail, Reason: fmt.Sprintf("user name longer than %d bytes", MaxNameLen)}, false
		}
	}
	return Result{}, true
}
