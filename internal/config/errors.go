package config

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/authd-project/authd/internal/conffile"
)

// Pos is where a line came from (conffile.Pos): file and 1-based line; Line
// 0 means "the file as a whole" (for problems such as "no passdb
// configured").
type Pos = conffile.Pos

// Error is one problem found in a configuration, with its position.
type Error = conffile.Error

// ErrorList is every problem found in a configuration. Parse, Load and
// LoadBytes return a *ErrorList so that `authd check` can show all mistakes
// at once instead of making the operator fix them one restart at a time.
type ErrorList []*Error

// Error prints one problem per line.
func (l *ErrorList) Error() string {
	if l == nil || len(*l) == 0 {
		return "no errors"
	}
	msgs := make([]string, len(*l))
	for i, e := range *l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Unwrap exposes the individual errors to errors.Is and errors.As.
func (l *ErrorList) Unwrap() []error {
	if l == nil {
		return nil
	}
	out := make([]error, len(*l))
	for i, e := range *l {
		out[i] = e
	}
	return out
}

func (l *ErrorList) add(pos Pos, format string, args ...any) {
	*l = append(*l, &Error{Pos: pos, Msg: fmt.Sprintf(format, args...)})
}

// err returns the list as an error, or a true nil when it is empty (a nil
// *ErrorList inside a non-nil error interface would look like a failure).
func (l ErrorList) err() error {
	if len(l) == 0 {
		return nil
	}
	return &l
}

// AsErrorList returns the problems inside err: the list itself for an
// *ErrorList, or a one-element list for any other error.
func AsErrorList(err error) ErrorList {
	if err == nil {
		return nil
	}
	var l *ErrorList
	if errors.As(err, &l) && l != nil {
		return *l
	}
	return ErrorList{{Msg: err.Error()}}
}

// sortErrors orders problems as a reader meets them: by the order in which
// files were first read, then by line. Problems without a file come last.
// Duplicates (the same message at the same place) are dropped.
func sortErrors(l ErrorList, fileOrder map[string]int) ErrorList {
	rank := func(e *Error) int {
		if r, ok := fileOrder[e.Pos.File]; ok {
			return r
		}
		if e.Pos.File == "" {
			return 1 << 30
		}
		return 1<<30 - 1
	}
	sort.SliceStable(l, func(i, j int) bool {
		ri, rj := rank(l[i]), rank(l[j])
		if ri != rj {
			return ri < rj
		}
		return l[i].Pos.Line < l[j].Pos.Line
	})
	out := l[:0]
	seen := map[Error]bool{}
	for _, e := range l {
		if seen[*e] {
			continue
		}
		seen[*e] = true
		out = append(out, e)
	}
	return out
}
