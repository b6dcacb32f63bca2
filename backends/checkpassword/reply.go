package checkpassword

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/authd-project/authd/internal/tabescape"
)

// ReplyEnv is what the reply program sees of its process.
type ReplyEnv struct {
	Getenv               func(string) (string, bool)
	UID, EUID, GID, EGID int
}

// Reply is the reply program ("authd checkpassword-reply"), with the
// behaviour of Dovecot 2.3's checkpassword-reply: a checkpassword program
// runs it after a success, and it writes the answer to fd 4 as
// TAB-separated key=value fields (w):
//
//	user=$USER                   when USER is set (the checkpassword may rename the user)
//	userdb_home=$HOME            when HOME is set
//	name=$NAME                   for each NAME listed in EXTRA (space-separated), name lower-cased
//	userdb_uid=, userdb_gid=     the process's uid and gid unless EXTRA gave them
//
// It exits 0 for a password check, 2 for a lookup (AUTHORIZED=2 set by the
// checkpassword program, which saw AUTHORIZED=1), and 111 when it cannot
// answer safely: if the checkpassword program changed the uid (ORIG_UID
// differs) and the reply program is not setuid, a process of that uid
// could have tampered with it, unless INSECURE_SETUID is set. Messages go
// to errw.
func Reply(env ReplyEnv, w, errw io.Writer) int {
	origUID := -1
	origEnv, haveOrig := env.Getenv("ORIG_UID")
	if n, err := strconv.ParseUint(origEnv, 10, 31); haveOrig && err == nil {
		origUID = int(n)
	}
	if _, insecure := env.Getenv("INSECURE_SETUID"); !insecure &&
		(origUID == -1 || origUID != env.UID) && env.UID == env.EUID && env.GID == env.EGID {
		if !haveOrig {
			fmt.Fprintln(errw, "checkpassword-reply: ORIG_UID was dropped by the checkpassword program; cannot tell whether it is safe to answer")
		} else {
			fmt.Fprintln(errw, "checkpassword-reply: the checkpassword program changed the uid; refusing to answer (set INSECURE_SETUID to allow)")
		}
		return 111
	}
	var b strings.Builder
	for _, kv := range [][2]string{{"USER", "user"}, {"HOME", "userdb_home"}} {
		v, ok := env.Getenv(kv[0])
		if !ok {
			continue
		}
		if strings.Contains(v, "\t") {
			fmt.Fprintf(errw, "checkpassword-reply: %s contains a TAB\n", kv[0])
			return 1
		}
		b.WriteString(kv[1] + "=" + tabescape.Escape(v) + "\t")
	}
	uidFound, gidFound := false, false
	if extra, ok := env.Getenv("EXTRA"); ok {
		for _, name := range strings.Split(extra, " ") {
			v, ok := env.Getenv(name)
			if name == "" || !ok {
				continue
			}
			key := strings.ToLower(name)
			uidFound = uidFound || key == "userdb_uid"
			gidFound = gidFound || key == "userdb_gid"
			b.WriteString(tabescape.Escape(key) + "=" + tabescape.Escape(v) + "\t")
		}
	}
	if !uidFound {
		b.WriteString("userdb_uid=" + strconv.Itoa(env.UID) + "\t")
	}
	if !gidFound {
		b.WriteString("userdb_gid=" + strconv.Itoa(env.GID) + "\t")
	}
	if _, err := io.WriteString(w, b.String()); err != nil {
		fmt.Fprintf(errw, "checkpassword-reply: writing to fd 4: %v\n", err)
		return 111
	}
	switch a, ok := env.Getenv("AUTHORIZED"); {
	case !ok:
		return 0
	case a == "2":
		return 2
	default:
		fmt.Fprintln(errw, "checkpassword-reply: the checkpassword program does not support passdb/userdb lookups")
		return 111
	}
}
