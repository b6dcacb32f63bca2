package sasl

import (
	"crypto/rand"
	"io"
	"os"
	"sync"
	"time"

	"github.com/authd-project/authd/internal/config"
)

// Settings are the process-wide inputs of the mechanisms. One value is
// shared by every request and must not change once requests run.
type Settings struct {
	// Realms is auth_realms: the realms DIGEST-MD5 offers in its
	// challenge (docs/protocol.md §4.3); none means a single realm="".
	Realms []string
	// AnonymousUsername is auth_anonymous_username, the user ANONYMOUS
	// logs in as; "" means Dovecot's default (config.DefaultAnonymousUsername).
	AnonymousUsername string
	// UsernameFromCert is auth_ssl_username_from_cert. EXTERNAL takes
	// its user from the client certificate only when it is set
	// (docs/protocol.md §4.3).
	UsernameFromCert bool
	// Hostname is Dovecot's my_hostname, the host part of the CRAM-MD5
	// challenge; "" means os.Hostname().
	Hostname string
	// StartTime is when the process started: APOP refuses a challenge
	// whose timestamp is older (mech-apop.c). Zero means the time this
	// package was initialised.
	StartTime time.Time
	// Rand is the source of challenge and nonce bytes; nil means
	// crypto/rand. Requests read it concurrently, so it must be safe for
	// concurrent use. Tests inject fixed bytes to replay docs/protocol.md §4.3.
	Rand io.Reader
	// Now is the clock for the CRAM-MD5 challenge; nil means time.Now.
	Now func() time.Time
	// OAuth2OpenIDConfigURL is the oauth2 passdb's
	// openid_configuration_url: OAUTHBEARER and XOAUTH2 add it to the
	// error JSON of a refused token as "openid-configuration" (RFC 7628
	// §3.2.2), as Dovecot 2.3 does. "" adds nothing.
	OAuth2OpenIDConfigURL string

	// scramNonceLen overrides the length of the SCRAM server nonce,
	// 64 in Dovecot (SCRAM_SERVER_NONCE_LEN). Only tests set it: the
	// worked SCRAM exchange of docs/protocol.md §4.3 uses 30 characters.
	scramNonceLen int
}

// defaultSettings serves an Env without Settings.
var defaultSettings = &Settings{}

// loadTime stands in for the process start time when StartTime is zero.
var loadTime = time.Now()

// defaultHostname is looked up once, as Dovecot does at startup.
var defaultHostname = sync.OnceValue(func() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
})

func (e *Env) settings() *Settings {
	if e.Settings == nil {
		return defaultSettings
	}
	return e.Settings
}

// random fills b from the configured source.
func (e *Env) random(b []byte) error {
	r := e.settings().Rand
	if r == nil {
		r = rand.Reader
	}
	_, err := io.ReadFull(r, b)
	return err
}

func (e *Env) now() time.Time {
	if f := e.settings().Now; f != nil {
		return f()
	}
	return time.Now()
}

func (e *Env) hostname() string {
	if h := e.settings().Hostname; h != "" {
		return h
	}
	return defaultHostname()
}

func (e *Env) startTime() time.Time {
	if t := e.settings().StartTime; !t.IsZero() {
		return t
	}
	return loadTime
}

func (e *Env) anonymousUsername() string {
	if u := e.settings().AnonymousUsername; u != "" {
		return u
	}
	return config.DefaultAnonymousUsername
}
