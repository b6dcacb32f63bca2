package conffile

import (
	"fmt"
	"strings"
)

// Pos is where a line came from. Line is 1-based; 0 means "the file as a
// whole" (a file that cannot be read, a check that needs every line).
type Pos struct {
	File string
	Line int
}

// String formats the position as "file:line", the form editors and
// Dovecot's own messages use.
func (p Pos) String() string {
	switch {
	case p.File == "" && p.Line == 0:
		return ""
	case p.Line == 0:
		return p.File
	default:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
}

// Error is one problem found in a file, with its position. The reader
// returns errors and warnings as values of this type; callers wrap them in
// their own error types.
type Error struct {
	Pos Pos
	Msg string
}

func (e *Error) Error() string {
	if s := e.Pos.String(); s != "" {
		return s + ": " + e.Msg
	}
	return e.Msg
}

// ValueKind says how a setting's Value must be read. The reader does not
// resolve `<file` or `$variable` values itself: whether a file may be read
// depends on the setting (ssl_cert = </etc/ssl/... belongs to another
// service and must not be opened), and a variable takes the value its
// setting has at that point of the file, which only the typed layer tracks.
type ValueKind int

const (
	// ValuePlain is a literal value, already unquoted (and, with
	// Options.LiteralValues, with $ENV: references expanded).
	ValuePlain ValueKind = iota
	// ValueFile is `key = <path`: Value holds the path as written; a
	// relative path is relative to the directory of Pos.File (see
	// Resolve).
	ValueFile
	// ValueVariable is an unquoted value that contains '$', kept verbatim
	// for expansion in file order (see ExpandVariables).
	ValueVariable
)

// Marker keys the reader puts in the tree where a file was included, so
// that the tree records every file read. They carry no setting.
const (
	KeyInclude    = "!include"
	KeyIncludeTry = "!include_try"
)

// Node is one line of a Dovecot-syntax file: a `key = value` setting, a
// `type [label] { ... }` section, or an include marker (Key is KeyInclude
// or KeyIncludeTry, Value is the file read).
type Node struct {
	Key   string
	Value string
	Kind  ValueKind
	// Quoted is set when the value (for a section: the label) was written
	// in quotes. Dovecot 2.3 makes no difference between `a = ""` and
	// `a =`; 2.4 does (a quoted empty value is set, an unquoted one may
	// mean "unset"), so the tree keeps it.
	Quoted bool
	// KeyQuoted is set for a 2.4 `"key" = value`; Key holds the text
	// between the quotes as written.
	KeyQuoted bool
	Section   bool
	Label     string
	// Group marks a 2.4 `group @name label {` section: Key is "@name".
	Group    bool
	Children []*Node
	Pos      Pos
}

// IsInclude reports whether n is an include marker rather than a setting.
func (n *Node) IsInclude() bool { return n.Key == KeyInclude || n.Key == KeyIncludeTry }

// Name is how a section is called in messages: "type" or "type label".
func (n *Node) Name() string {
	if n.Label != "" {
		return n.Key + " " + n.Label
	}
	return n.Key
}

// String renders the subtree under n compactly, one node per line, for
// tests and debugging: `key=value` (with < or $ before a file or variable
// value), `type "label" {` … `}`, `!include path`.
func (n *Node) String() string {
	var b strings.Builder
	n.write(&b, 0)
	return b.String()
}

func (n *Node) write(b *strings.Builder, depth int) {
	ind := strings.Repeat(" ", depth)
	for _, c := range n.Children {
		switch {
		case c.IsInclude():
			fmt.Fprintf(b, "%s%s %s\n", ind, c.Key, c.Value)
		case c.Section:
			if c.Label != "" || c.Quoted {
				fmt.Fprintf(b, "%s%s %q {\n", ind, c.Key, c.Label)
			} else {
				fmt.Fprintf(b, "%s%s {\n", ind, c.Key)
			}
			c.write(b, depth+1)
			fmt.Fprintf(b, "%s}\n", ind)
		default:
			mark := map[ValueKind]string{ValuePlain: "", ValueFile: "<", ValueVariable: "$"}[c.Kind]
			fmt.Fprintf(b, "%s%s=%s%q\n", ind, c.Key, mark, c.Value)
		}
	}
}
