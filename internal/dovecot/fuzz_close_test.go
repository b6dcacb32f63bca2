package dovecot_test

import (
	"encoding/hex"
	"slices"
	"strconv"
	"strings"
)

// When may a server close a connection? Only for a protocol error: a bad
// payload (invalid base64, a malformed SASL message) fails its request and
// leaves the connection, which a login process shares among all its
// clients, open (docs/protocol.md §1.8; CVE-2025-59028 was Dovecot closing
// it for bad base64). These restate the rules from the protocol, for the
// session fuzzers to compare with what the servers did.

// clientCloses reports whether the input's lines, replayed in state st,
// contain a line that must close a client connection, or one that may: an
// AUTH that reuses an id closes the connection only while the earlier
// request is still pending, which depends on timing.
func clientCloses(st clientState, lines []string) (may, must bool) {
	gotVersion, gotCPID := st.handshake, st.handshake
	used := map[uint32]bool{}
	if st.auth != "" {
		used[1] = true
	}
	for _, l := range lines {
		if len(l)+1 > 16384 { // the limit counts the LF
			return true, true
		}
		f := fields(l)
		switch {
		case !gotVersion:
			major, err1 := strconv.ParseUint(safeIndex(f, 1), 10, 32)
			_, err2 := strconv.ParseUint(safeIndex(f, 2), 10, 32)
			if len(f) != 3 || f[0] != "VERSION" || err1 != nil || err2 != nil || major != 1 {
				return true, true
			}
			gotVersion = true
		case !gotCPID:
			pid, err := strconv.ParseUint(safeIndex(f, 1), 10, 32)
			if len(f) < 2 || f[0] != "CPID" || err != nil || pid == 0 {
				return true, true
			}
			gotCPID = true
		case f[0] == "AUTH":
			id, ok := parseID(safeIndex(f, 1))
			if len(f) < 3 || !ok || id == 0 || !slices.Contains(fuzzMechs, strings.ToUpper(f[2])) || !authParamsOK(f[3:]) {
				return true, true
			}
			may = may || used[id]
			used[id] = true
		case f[0] == "CONT" || f[0] == "CANCEL":
			need := 3
			if f[0] == "CANCEL" {
				need = 2
			}
			if _, ok := parseID(safeIndex(f, 1)); len(f) < need || !ok {
				return true, true
			}
		default:
			return true, true
		}
	}
	return may, false
}

// authParamsOK: AUTH names a service, and resp, if present, comes last.
func authParamsOK(params []string) bool {
	service, resp := false, false
	for _, p := range params {
		if resp {
			return false
		}
		switch k, _, _ := strings.Cut(p, "="); k {
		case "service", "protocol":
			service = true
		case "resp":
			resp = true
		}
	}
	return service
}

// masterCloses reports whether a master connection in state st must
// close on the lines (the rules have no timing in them).
func masterCloses(st masterState, lines []string) bool {
	gotVersion := st.version
	for _, l := range lines {
		if len(l)+1 > 1024 {
			return true
		}
		f := fields(l)
		if !gotVersion {
			if len(f) < 2 || f[0] != "VERSION" || f[1] != "1" {
				return true
			}
			gotVersion = true
			continue
		}
		if !masterLineOK(st.full, f) {
			return true
		}
	}
	return false
}

// masterLineOK: a command the socket allows, with the arguments it needs.
func masterLineOK(full bool, f []string) bool {
	_, idOK := parseID(safeIndex(f, 1))
	if len(f) < 2 || !idOK {
		return false
	}
	switch f[0] {
	case "USER", "PASS":
		return len(f) >= 3 && slices.ContainsFunc(f[3:], func(p string) bool {
			k, _, _ := strings.Cut(p, "=")
			return k == "service" || k == "protocol"
		})
	case "LIST":
		return true
	case "CACHE-FLUSH", "PENALTY":
		return full
	case "PENALTY-RESET":
		return full && len(f) >= 4
	case "REQUEST":
		_, cpidOK := parseID(safeIndex(f, 2))
		_, reqOK := parseID(safeIndex(f, 3))
		_, hexErr := hex.DecodeString(safeIndex(f, 4))
		return full && len(f) >= 5 && cpidOK && reqOK && hexErr == nil && !slices.ContainsFunc(f[5:], badSessionPID)
	}
	return false
}

func badSessionPID(p string) bool {
	k, v, _ := strings.Cut(p, "=")
	_, err := strconv.ParseInt(v, 10, 32)
	return k == "session_pid" && err != nil
}

func safeIndex(f []string, i int) string {
	if i < len(f) {
		return f[i]
	}
	return ""
}
