package conffile

import (
	"errors"
	"path/filepath"
	"slices"
	"strings"
)

// include reads the files matching pattern. Both Dovecot readers resolve
// a relative pattern against the including file's directory, expand it
// with glob(GLOB_BRACE), and treat `!include` without any match, or with
// a match that cannot be opened, as an error and `!include_try` in either
// case as nothing. Matches are read in sorted order (descending with
// Options.ReverseGlobOrder).
func (r *reader) include(pos Pos, directive, pattern string) {
	try := directive == KeyIncludeTry
	switch {
	case r.opts.NoIncludes:
		r.errorf(pos, "%s is not supported here", directive)
		return
	case pattern == "":
		r.errorf(pos, "%s: missing file name", directive)
		return
	}
	pattern = Resolve(pos.File, pattern)
	matches, err := r.glob(pattern)
	if err != nil {
		r.errorf(pos, "%s %s: %v", directive, pattern, err)
		return
	}
	if len(matches) == 0 {
		if !try {
			r.errorf(pos, "%s %s: no such file (no matches)", directive, pattern)
		}
		return
	}
	if r.opts.ReverseGlobOrder {
		slices.Reverse(matches)
	}
	for _, f := range matches {
		if len(r.inc) >= r.opts.MaxIncludeDepth {
			r.errorf(pos, "%s %s: includes nested more than %d deep", directive, f, r.opts.MaxIncludeDepth)
			return
		}
		if slices.Contains(r.inc, absPath(f)) {
			r.errorf(pos, "%s %s: recursive include", directive, f)
			continue
		}
		data, err := r.opts.ReadFile(f)
		if err != nil {
			if !try {
				r.errorf(pos, "%s %s: %s", directive, f, ErrorText(err))
			}
			continue
		}
		r.noteFile(f)
		if !r.detached() {
			r.addChild(&Node{Key: directive, Value: f, Pos: pos})
		}
		r.readData(f, data)
	}
}

// glob expands braces, then each pattern, and returns the matches in
// sorted order without duplicates and without the hidden files a C glob()
// would not match.
func (r *reader) glob(pattern string) ([]string, error) {
	pats, err := expandBraces(pattern)
	if err != nil {
		return nil, err
	}
	var matches []string
	seen := map[string]bool{}
	for _, pat := range pats {
		m, err := r.opts.Glob(pat)
		if err != nil {
			return nil, errors.New("bad pattern: " + err.Error())
		}
		for _, f := range dropHidden(pat, m) {
			if !seen[f] {
				seen[f] = true
				matches = append(matches, f)
			}
		}
	}
	return matches, nil
}

// Resolve resolves path against the directory of the file that names it
// (an include pattern, a `<file` value). A file name without a directory
// leaves path relative to the working directory, as Dovecot's
// fix_relative_path does.
func Resolve(file, path string) string {
	if strings.HasPrefix(path, "/") {
		return path
	}
	i := strings.LastIndexByte(file, '/')
	if i < 0 {
		return path
	}
	return filepath.Clean(file[:i+1] + path)
}

func absPath(p string) string {
	if a, err := filepath.Abs(p); err == nil {
		return a
	}
	return filepath.Clean(p)
}

// dropHidden removes matches whose path components start with '.' where
// the pattern's component does not: C glob() never lets a wildcard match a
// leading dot (editor backups such as .#10-auth.conf), Go's filepath.Glob
// does.
func dropHidden(pattern string, matches []string) []string {
	pc := strings.Split(filepath.ToSlash(pattern), "/")
	out := matches[:0:0]
outer:
	for _, m := range matches {
		mc := strings.Split(filepath.ToSlash(m), "/")
		if len(mc) == len(pc) {
			for i := range mc {
				if strings.HasPrefix(mc[i], ".") && !strings.HasPrefix(pc[i], ".") {
					continue outer
				}
			}
		}
		out = append(out, m)
	}
	return out
}

// expandBraces expands csh-style `{a,b}` alternatives (GLOB_BRACE), left
// to right, nested braces included. A '{' without a matching '}' is
// literal. More than maxBraceExpansion results is an error.
func expandBraces(pattern string) ([]string, error) {
	out := []string{}
	var walk func(s string) error
	walk = func(s string) error {
		if len(out) > maxBraceExpansion {
			return errors.New("too many {,} alternatives")
		}
		open, close := outerBraces(s)
		if open < 0 || close < 0 {
			out = append(out, s)
			return nil
		}
		for _, a := range splitAlternatives(s[open+1 : close]) {
			if err := walk(s[:open] + a + s[close+1:]); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(pattern); err != nil {
		return nil, err
	}
	return out, nil
}

// outerBraces finds the first top-level `{…}` pair of s (backslash
// escapes skipped), or -1s.
func outerBraces(s string) (open, close int) {
	open, depth := -1, 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case '{':
			if depth == 0 {
				open = i
			}
			depth++
		case '}':
			if depth > 0 {
				depth--
				if depth == 0 {
					return open, i
				}
			}
		}
	}
	return open, -1
}

// splitAlternatives splits the inside of a brace pair at its top-level
// commas.
func splitAlternatives(body string) []string {
	var alts []string
	depth, start := 0, 0
	for i := 0; i < len(body); i++ {
		switch body[i] {
		case '\\':
			i++
		case '{':
			depth++
		case '}':
			depth--
		case ',':
			if depth == 0 {
				alts = append(alts, body[start:i])
				start = i + 1
			}
		}
	}
	return append(alts, body[start:])
}
