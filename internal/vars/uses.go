package vars

import "strings"

// Uses reports whether the template reads the named value anywhere
// (including inside hash and if expressions). name is a short key ("u"),
// a long name or alias ("user", "local_ip" — aliases count as their
// variable, so Uses("lip") is true for %{local_ip}), or one of the
// function names "passdb", "userdb", "env", "hostname", "uid", "gid", "if"
// or a hash method ("sha256"), or an auth policy variable
// ("hashed_password", "requested_username").
func (t *Template) Uses(name string) bool {
	if t == nil {
		return false
	}
	if t.v24 != nil {
		return t.v24.uses(name)
	}
	id, isVar := varID(0), false
	if len(name) == 1 {
		id, isVar = lookupShort(name[0])
	} else {
		id, isVar = lookupLong(name)
	}
	if isVar {
		id = varTable[id].canon
	}
	for i := range t.nodes {
		if t.nodes[i].uses(name, id, isVar) {
			return true
		}
	}
	return false
}

func (n *node) uses(name string, id varID, isVar bool) bool {
	switch n.kind {
	case nVar:
		return isVar && varTable[n.id].canon == id
	case nProc:
		switch n.proc {
		case procHostname:
			return name == "hostname"
		case procUID:
			return name == "uid"
		default:
			return name == "gid"
		}
	case nEnv:
		return name == "env"
	case nPolicy:
		pv, ok := lookupPolicy(name)
		return ok && pv == n.pv
	case nField:
		switch {
		case n.oauth2:
			return name == "oauth2"
		case n.userdb:
			return name == "userdb"
		}
		return name == "passdb"
	case nHash:
		h := n.hash
		if strings.EqualFold(name, h.name) || h.field.uses(name, id, isVar) {
			return true
		}
		if h.salt != nil && h.salt.Uses(name) {
			return true
		}
	case nIf:
		if name == "if" {
			return true
		}
		for _, p := range n.cond.params {
			if p.Uses(name) {
				return true
			}
		}
	}
	return false
}
