package vars

import (
	"encoding/hex"
	"fmt"
)

// Expansion of a Dovecot 2.4 template, step by step as lib-var-expand runs
// its programs:
//
//   - A pipeline's first name is looked up as a variable. If there is
//     none, the error is kept aside and, when a filter of that name
//     exists, the filter runs without input (`%{literal('x')}`,
//     `%{if(…)}`).
//   - Each later step is a filter. A filter that fails clears the value; if
//     an error was already kept aside the expansion fails with it,
//     otherwise its own error is kept aside. A step that succeeds forgets
//     the kept error, so `%{nosuch | default('x')}` gives "x".
//   - At the end of a pipeline a binary value (from a hash, unhexlify,
//     unbase64) becomes lower-case hex, and a value is written out, passed
//     through the escape function (SQL, LDAP) unless the program is
//     literal text; a pipeline without a value fails the whole expansion
//     with the kept error, and nothing is written.
//
// Values are byte strings. Dovecot reads them as C strings in places (the
// final output, lower, hex …), which would end a value at a NUL byte;
// authd keeps such values whole, so that a name holding a NUL can never
// become another user's name (Dovecot never receives one).

// maxValue24 bounds the value of a pipeline: filters such as hexlify or
// concat grow it, and a pipeline of them would otherwise grow it without
// bound (Dovecot has no limit).
const maxValue24 = 1 << 20

// state24 is the value travelling through one pipeline.
type state24 struct {
	c       *Context
	esc     func(string) string
	policy  bool
	val     []byte
	set     bool
	binary  bool
	delayed *ExpandError
}

func (s *state24) setString(v string) {
	s.val = append(s.val[:0], v...)
	s.set, s.binary = true, false
}

// setData sets the value without touching the binary flag (Dovecot's
// var_expand_state_set_transfer_data).
func (s *state24) setData(b []byte) {
	s.val = append(s.val[:0], b...)
	s.set = true
}

func (s *state24) setBinary(b []byte) {
	s.val = append(s.val[:0], b...)
	s.set, s.binary = true, true
}

// unset clears the value; the binary flag stays, as in Dovecot.
func (s *state24) unset() {
	s.val = s.val[:0]
	s.set = false
}

// str is the value as a string.
func (s *state24) str() string { return string(s.val) }

func (s *state24) lookup(name string) (string, *ExpandError) {
	return s.c.lookup24(name, s.policy)
}

// expand24 runs the template; on failure nothing is written.
func (t *tmpl24) expand(dst []byte, c *Context, esc func(string) string, policy bool) ([]byte, *ExpandError) {
	start := len(dst)
	if c == nil {
		c = &Context{}
	}
	st := state24{c: c, esc: esc, policy: policy}
	for i := range t.progs {
		pr := &t.progs[i]
		if pr.literal {
			dst = append(dst, pr.lit...)
			continue
		}
		var err *ExpandError
		if err = st.run(pr); err != nil {
			return dst[:start], err
		}
		if st.binary {
			st.setString(hex.EncodeToString(st.val))
		}
		if !st.set {
			return dst[:start], st.delayed
		}
		out := st.str()
		if esc != nil {
			out = esc(out)
		}
		dst = append(dst, out...)
		st.unset()
	}
	return dst, nil
}

// run executes one pipeline.
func (s *state24) run(pr *prog24) *ExpandError {
	for i := range pr.stmts {
		if err := s.step(&pr.stmts[i], i == 0); err != nil {
			return err
		}
	}
	return nil
}

// step is var_expand_execute_stmt: it returns an error only when the
// whole expansion fails.
func (s *state24) step(st *stmt24, first bool) *ExpandError {
	var kept *ExpandError
	if first {
		v, err := s.lookup(st.fn)
		if err == nil {
			s.setString(v)
			return nil
		}
		s.unset()
		kept = err
	}
	switch {
	case st.filter != nil:
		msg := st.filter.run(s, st)
		if msg == "" && len(s.val) > maxValue24 {
			msg = fmt.Sprintf("value longer than authd's limit of %d bytes", maxValue24)
		}
		if msg != "" {
			s.unset()
			if s.delayed != nil {
				return s.delayed
			}
			kept = &ExpandError{Msg: st.fn + ": " + msg}
		} else {
			kept = nil
		}
	case !first:
		return &ExpandError{Msg: fmt.Sprintf("No such function '%s'", st.fn)}
	}
	s.delayed = kept
	return nil
}
