package config

import "github.com/authd-project/authd/internal/conffile"

// Rule is a passdb or userdb block's result_success, result_failure or
// result_internalfail: what the chain does after that block's outcome
// (docs/protocol.md §5.4).
type Rule uint8

// The six rules. The zero value is RuleReturn.
const (
	RuleReturn       Rule = iota // stop with the success or failure so far
	RuleReturnOK                 // stop with success
	RuleReturnFail               // stop with failure
	RuleContinue                 // go on to the next block
	RuleContinueOK               // go on, counting this block as a success
	RuleContinueFail             // go on, counting this block as a failure
)

var ruleNames = []string{"return", "return-ok", "return-fail", "continue", "continue-ok", "continue-fail"}

func (r Rule) String() string { return ruleNames[r] }

// Continues reports whether the chain goes on after the rule.
func (r Rule) Continues() bool { return r >= RuleContinue }

// Skip is a block's skip setting: when it is left out of the chain.
type Skip uint8

// The skip values. Passdbs take never, authenticated and unauthenticated;
// userdbs take never, found and notfound.
const (
	SkipNever           Skip = iota
	SkipAuthenticated        // passdb: a previous passdb verified the password
	SkipUnauthenticated      // passdb: none did yet
	SkipFound                // userdb: a previous userdb found the user
	SkipNotFound             // userdb: none did yet
)

var skipNames = []string{"never", "authenticated", "unauthenticated", "found", "notfound"}

func (s Skip) String() string { return skipNames[s] }

// Verbosity is a block's auth_verbose: "default" follows the global
// auth_verbose.
type Verbosity uint8

// The auth_verbose values of a block.
const (
	VerboseDefault Verbosity = iota
	VerboseYes
	VerboseNo
)

var verbosityNames = []string{"default", "yes", "no"}

func (v Verbosity) String() string { return verbosityNames[v] }

// Dovecot's defaults, written once: the settings table
// (dovecot_settings.go), the engine and the mechanisms take them from here.
const (
	DefaultUsernameFormat    = "%Lu"
	DefaultAnonymousUsername = "anonymous"
)

// newDB is a passdb { } or userdb { } block with Dovecot's defaults.
func newDB(label string, pos conffile.Pos) DB {
	return DB{Name: label, Pos: pos, ResultSuccess: RuleReturnOK, ResultFailure: RuleContinue, ResultInternalfail: RuleContinue}
}
