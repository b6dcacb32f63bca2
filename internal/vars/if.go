package vars

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// %{if;lhs;op;rhs;then[;else]} (Dovecot 2.3 var-expand-if). The five
// parameters are themselves templates, expanded before the comparison.

type ifOp uint8

const (
	opUnknown ifOp = iota
	opNumEq
	opNumLt
	opNumLe
	opNumGt
	opNumGe
	opNumNe
	opStrEq
	opStrLt
	opStrLe
	opStrGt
	opStrGe
	opStrNe
	opLike
	opNotLike
	opRegexp
	opNotRegexp
)

var ifOps = map[string]ifOp{
	"==": opNumEq, "<": opNumLt, "<=": opNumLe, ">": opNumGt, ">=": opNumGe, "!=": opNumNe,
	"eq": opStrEq, "lt": opStrLt, "le": opStrLe, "gt": opStrGt, "ge": opStrGe, "ne": opStrNe,
	"*": opLike, "!*": opNotLike, "~": opRegexp, "!~": opNotRegexp,
}

type ifSpec struct {
	params [5]*Template
	op     ifOp           // opUnknown: decided at expansion time
	re     *regexp.Regexp // precompiled when op and rhs are static
}

// splitIfParams splits the text after "if;" the way Dovecot does: ';'
// separates parameters except inside %{...}; a backslash makes the next
// byte literal (and is dropped; a backslash cannot itself be escaped); an
// unescaped ':' outside %{...} ends the parameter list.
func splitIfParams(s string) []string {
	var params []string
	var cur strings.Builder
	depth := 0
	escape, maybeVar := false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '\\' {
			escape = true
			continue
		} else if escape {
			cur.WriteByte(c)
			escape = false
			continue
		}
		switch {
		case c == '%':
			maybeVar = true
		case maybeVar && c == '{':
			depth++
			maybeVar = false
		case depth > 0 && c == '}':
			depth--
		case depth == 0 && c == ';':
			params = append(params, cur.String())
			cur.Reset()
			continue
		case depth == 0 && c == ':':
			i = len(s)
			continue
		}
		cur.WriteByte(c)
	}
	if cur.Len() > 0 {
		params = append(params, cur.String())
	}
	return params
}

func (p *parser) parseIf(n *node, name, data string, pos int) {
	// Dovecot glues NAME and DATA back together with ':' (always adding
	// one), so the scan below normally stops at that final ':'.
	input := name + ":" + data
	semi := strings.IndexByte(input, ';')
	if semi < 0 {
		p.fail(pos, "if: missing parameter(s)")
		bad(n, false, "if: missing parameter(s)")
		return
	}
	params := splitIfParams(input[semi+1:])
	if len(params) == 4 {
		params = append(params, "")
	}
	if len(params) != 5 {
		p.fail(pos, "if: requires four or five parameters, got %d", len(params))
		bad(n, false, fmt.Sprintf("if: requires four or five parameters, got %d", len(params)))
		return
	}
	spec := &ifSpec{}
	for i, s := range params {
		spec.params[i] = p.sub(s, pos)
	}
	if spec.params[1].Static() {
		opText := string(spec.params[1].AppendExpand(nil, &Context{}, nil))
		op, ok := ifOps[opText]
		if !ok {
			p.fail(pos, "if: unsupported comparator '%s'", opText)
		}
		spec.op = op
		if (op == opRegexp || op == opNotRegexp) && spec.params[2].Static() {
			rhs := string(spec.params[2].AppendExpand(nil, &Context{}, nil))
			re, err := regexp.CompilePOSIX(rhs)
			if err != nil {
				p.fail(pos, "if: regex failed: %v", err)
			}
			spec.re = re
		}
	}
	n.kind = nIf
	n.cond = spec
}

// appendIf expands the parameters into dst's tail, compares, and leaves
// only the chosen branch.
func appendIf(dst []byte, s *ifSpec, c *Context, esc func(string) string) ([]byte, *ExpandError) {
	start := len(dst)
	var ends [5]int
	var err *ExpandError
	for i, p := range s.params {
		dst, err = p.expand(dst, c, esc)
		if err != nil {
			return dst[:start], err
		}
		ends[i] = len(dst)
	}
	param := func(i int) string {
		b := start
		if i > 0 {
			b = ends[i-1]
		}
		return string(dst[b:ends[i]])
	}
	op := s.op
	if op == opUnknown {
		o, ok := ifOps[param(1)]
		if !ok {
			return dst[:start], &ExpandError{Msg: fmt.Sprintf("if: Unsupported comparator '%s'", param(1))}
		}
		op = o
	}
	lhs, rhs := param(0), param(2)
	var result bool
	switch op {
	case opNumEq, opNumLt, opNumLe, opNumGt, opNumGe, opNumNe:
		a, ok := parseIntmax(lhs)
		if !ok {
			return dst[:start], &ExpandError{Msg: fmt.Sprintf("if: %s (lhs) is not a number", lhs)}
		}
		b, ok := parseIntmax(rhs)
		if !ok {
			return dst[:start], &ExpandError{Msg: fmt.Sprintf("if: %s (rhs) is not a number", rhs)}
		}
		switch op {
		case opNumEq:
			result = a == b
		case opNumLt:
			result = a < b
		case opNumLe:
			result = a <= b
		case opNumGt:
			result = a > b
		case opNumGe:
			result = a >= b
		case opNumNe:
			result = a != b
		}
	case opStrEq:
		result = lhs == rhs
	case opStrLt:
		result = lhs < rhs
	case opStrLe:
		result = lhs <= rhs
	case opStrGt:
		result = lhs > rhs
	case opStrGe:
		result = lhs >= rhs
	case opStrNe:
		result = lhs != rhs
	case opLike:
		result = wildcardMatch(lhs, rhs)
	case opNotLike:
		result = !wildcardMatch(lhs, rhs)
	case opRegexp, opNotRegexp:
		re := s.re
		if re == nil {
			var rerr error
			re, rerr = regexp.CompilePOSIX(rhs)
			if rerr != nil {
				return dst[:start], &ExpandError{Msg: fmt.Sprintf("if: regex failed: %v", rerr)}
			}
		}
		result = re.MatchString(lhs) != (op == opNotRegexp)
	}
	pick := 4
	if result {
		pick = 3
	}
	b := ends[pick-1]
	n := copy(dst[start:], dst[b:ends[pick]])
	return dst[:start+n], nil
}

// parseIntmax is Dovecot's str_to_intmax: optional '-', digits, no overflow.
func parseIntmax(s string) (int64, bool) {
	d := strings.TrimPrefix(s, "-")
	if d == "" {
		return 0, false
	}
	for i := 0; i < len(d); i++ {
		if d[i] < '0' || d[i] > '9' {
			return 0, false
		}
	}
	v, err := strconv.ParseInt(s, 10, 64)
	return v, err == nil
}

// wildcardMatch matches data against a mask where '*' is any run of bytes
// and '?' exactly one byte (Dovecot's wildcard_match, case-sensitive).
func wildcardMatch(data, mask string) bool {
	d, m := 0, 0
	starM, starD := -1, 0
	for d < len(data) {
		switch {
		case m < len(mask) && mask[m] == '*':
			starM, starD = m, d
			m++
		case m < len(mask) && (mask[m] == '?' || mask[m] == data[d]):
			m++
			d++
		case starM >= 0:
			starD++
			d = starD
			m = starM + 1
		default:
			return false
		}
	}
	for m < len(mask) && mask[m] == '*' {
		m++
	}
	return m == len(mask)
}
