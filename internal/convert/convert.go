// Package convert implements authd convert: a Dovecot 2.3 auth
// configuration (the main file with its includes, and the
// dovecot-sql.conf.ext and dovecot-ldap.conf.ext files its blocks' args
// name) rewritten in Dovecot 2.4's language (docs/operations.md §2.1).
//
// The 2.3 file is loaded as authd loads it, turned into the Config a 2.4
// file with the same meaning would load into, and written by the
// configuration printer authd check uses (config.DumpWith, with secrets,
// without 2.4's defaults). Every place where the meaning differs between
// the two files, or where the 2.4 text is not what 2.3 wrote (a template
// rewritten, a 2.3 default that 2.4 does not share written out), gets a
// comment starting with "authd convert:". Whatever has no 2.4 equivalent
// fails the conversion, every such item listed with its file:line. The
// result is loaded back before it is returned.
package convert

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/authd-project/authd/internal/config"
	"github.com/authd-project/authd/internal/policy"
	"github.com/authd-project/authd/internal/vars"
)

// Version is the dovecot_config_version convert writes.
const Version = "2.4.1"

// NotePrefix starts every comment convert writes into the file.
const NotePrefix = "authd convert: "

// Problems lists what has no Dovecot 2.4 equivalent, each "file:line: …".
type Problems []string

func (p Problems) Error() string {
	return "no Dovecot 2.4 equivalent for:\n  " + strings.Join(p, "\n  ")
}

// Options change what File writes.
type Options struct {
	// Dovecot leaves out authd's own settings and sections (grpc { },
	// metrics { }, penalty { }, hash_budget { }, log_format,
	// shutdown_timeout, auth_cache_password_fingerprint): the result is a
	// file Dovecot 2.4 itself accepts.
	Dovecot bool
}

// File converts the 2.3 configuration at path. The error is the
// configuration's own (it does not load), Problems, or a failure to load
// the result back (a bug).
func File(path string, o Options) ([]byte, error) {
	cfg, err := config.Load(path)
	if err != nil {
		return nil, err
	}
	if cfg.Syntax == vars.Syntax24 {
		return nil, fmt.Errorf("%s is already in Dovecot 2.4's language (dovecot_config_version)", path)
	}
	cv := &converter{notes: map[string][]string{}, names: map[string]bool{}}
	out := cv.config(cfg)
	if len(cv.problems) > 0 {
		return nil, cv.problems
	}
	var buf bytes.Buffer
	header := cv.header(path)
	if o.Dovecot {
		header = append(header, "For Dovecot 2.4 (authd convert -dovecot): authd's own settings and sections are left out.",
			"Dovecot's main file must also set dovecot_storage_version, a choice about mail storage left to you.")
	}
	out.DumpWith(&buf, config.DumpOptions{Secrets: true, Minimal: true, Notes: cv.notes, Header: header, DovecotOnly: o.Dovecot})
	if _, err := config.LoadBytes(path, buf.Bytes()); err != nil {
		return nil, fmt.Errorf("authd convert made a configuration that does not load (please report this): %w", err)
	}
	return buf.Bytes(), nil
}

type converter struct {
	notes    map[string][]string // by printer path (config.DumpOptions.Notes)
	names    map[string]bool     // block labels in use, "passdb NAME"
	extra    []string            // more header lines
	problems Problems
	// oauth2 are the top level's oauth2 settings, from the args file of
	// the first oauth2 passdb (oauth2Args): Dovecot 2.4's OAUTHBEARER and
	// XOAUTH2 read them there, and the passdb inherits them.
	oauth2     []config.DriverSetting
	oauth2Args string
}

// note adds a comment before the setting at path.
func (cv *converter) note(path, format string, args ...any) {
	cv.notes[path] = append(cv.notes[path], NotePrefix+fmt.Sprintf(format, args...))
}

func (cv *converter) problem(at, format string, args ...any) {
	cv.problems = append(cv.problems, at+": "+fmt.Sprintf(format, args...))
}

// header are the comments at the top of the file.
func (cv *converter) header(path string) []string {
	h := []string{
		"Converted by authd convert from the Dovecot 2.3 configuration " + path + ".",
		"Comments starting with \"" + strings.TrimSpace(NotePrefix) + "\" mark where 2.4's text or meaning differs from",
		"what the 2.3 file wrote. Settings at Dovecot 2.4's defaults are left out.",
		"Secrets (passwords) are written as they are: protect this file like the original.",
	}
	return append(h, cv.extra...)
}

// tmpl converts a 2.3 template found at path (a printer path) and notes
// the rewrite; at is where the 2.3 file wrote it, for a problem.
func (cv *converter) tmpl(path, at, src string) string {
	out, ok := vars.Convert23(src)
	if !ok {
		cv.problem(at, "template %q has no Dovecot 2.4 equivalent (2.3's offsets and widths, %%{if;…}, hashes and the H N E T modifiers have none)", src)
		return src
	}
	if out != src {
		cv.note(path, "Dovecot 2.3 wrote %s", src)
	}
	return out
}

// config builds the 2.4 Config with cfg's meaning.
func (cv *converter) config(cfg *config.Config) *config.Config {
	out := *cfg
	out.Syntax = vars.Syntax24
	out.ConfigVersion = Version
	out.Auth = cv.auth(cfg.Auth, cfg)
	out.Passdbs, out.Userdbs = nil, nil
	for _, db := range cfg.Passdbs {
		out.Passdbs = append(out.Passdbs, cv.db("passdb", db))
	}
	out.OAuth2 = cv.oauth2
	for _, db := range cfg.Userdbs {
		if db.Name == "" && db.Pos == (config.Pos{}) {
			out.Userdbs = append(out.Userdbs, db) // the stand-in, not written
			continue
		}
		out.Userdbs = append(out.Userdbs, cv.db("userdb", db))
	}
	// disable_plaintext_auth, the login processes' setting, is written
	// as auth_allow_cleartext.
	ignored := slices.DeleteFunc(slices.Clone(cfg.Ignored), func(s string) bool { return s == "disable_plaintext_auth" })
	if n := len(ignored); n > 0 {
		list := strings.Join(ignored[:min(n, 8)], ", ")
		if n > 8 {
			list += fmt.Sprintf(" and %d more", n-8)
		}
		cv.extra = append(cv.extra, NotePrefix+"only the auth part is converted; not written (Dovecot's other services): "+list+".")
	}
	out.Ignored, out.Warnings = nil, nil
	return &out
}

// auth converts the auth_* settings.
func (cv *converter) auth(a config.Auth, cfg *config.Config) config.Auth {
	at := func(key string) string {
		if p, ok := cfg.SettingPos[key]; ok {
			return p.String()
		}
		return cfg.Files[0]
	}
	if a.UsernameFormat == config.DefaultUsernameFormat {
		a.UsernameFormat = config.DefaultUsernameFormat24 // the same meaning
	} else {
		a.UsernameFormat = cv.tmpl("auth_username_format", at("auth_username_format"), a.UsernameFormat)
	}
	a.InternalFailureDelay = 2 * time.Second
	// Dovecot 2.3 verified every scheme; 2.4 refuses weak ones unless
	// told otherwise. authd itself ignores the setting.
	a.AllowWeakSchemes = true
	cv.note("auth_allow_weak_schemes", "Dovecot 2.3 accepted every password scheme; 2.4 refuses weak ones (CRYPT, MD5, SHA1, PLAIN-MD5 …)")
	cv.note("auth_allow_weak_schemes", "unless this is yes. Set it to no once no stored password uses one. authd ignores it.")
	if a.WorkerMaxCount != 30 {
		cv.extra = append(cv.extra, fmt.Sprintf("%sauth_worker_max_count = %d is not written: 2.4 writes service auth-worker { process_limit = %d }, and authd has no worker processes.",
			NotePrefix, a.WorkerMaxCount, a.WorkerMaxCount))
	}
	cv.policy(&a.Policy, at("auth_policy_request_attributes"))
	return a
}

// policy converts auth_policy_request_attributes.
func (cv *converter) policy(p *policy.Settings, file string) {
	if p.URL == "" {
		p.Attributes = nil // no policy server: 2.4's default attributes will do
		return
	}
	if p.Attributes == nil {
		return
	}
	var pairs [][2]string
	for _, kv := range p.Attributes.Pairs() {
		pairs = append(pairs, [2]string{kv[0], cv.tmpl("auth_policy_request_attributes/"+kv[0], file, kv[1])})
	}
	a, err := policy.ParseAttributes24(pairs)
	if err != nil {
		cv.problem(file, "auth_policy_request_attributes: %v", err)
		return
	}
	p.Attributes = a
}

// label gives a block its 2.4 name: its 2.3 name, else its driver's, made
// unique (2.4 merges blocks of the same name).
func (cv *converter) label(kind string, db config.DB) string {
	base := db.Name
	if base == "" {
		base = db.Driver
	}
	name := base
	for i := 2; cv.names[kind+" "+name]; i++ {
		name = fmt.Sprintf("%s-%d", base, i)
	}
	cv.names[kind+" "+name] = true
	return name
}
