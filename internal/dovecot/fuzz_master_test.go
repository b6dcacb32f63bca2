package dovecot_test

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/authd-project/authd/internal/dovecot"
)

// FuzzMasterSession drives whole master-protocol connections with the
// input's lines, in each state of masterStates: an auth-master socket
// before and after VERSION, and an auth-userdb socket whose peer is not
// the owner (the restricted rule of docs/protocol.md §2.1). Before the
// input, the harness logs two users in on a login socket and keeps that
// connection open, so that REQUEST has finished logins to claim: the
// input's "$CPID" and "$COOKIE" are replaced by that connection's CPID
// and COOKIE, which lets the fuzzer reach a successful REQUEST. The
// oracle (checkMasterTranscript and the checks around it), per state:
//
//   - no panic, recovered or not: Shared.Stats.Panics stays 0;
//   - the connection closes exactly on protocol errors (masterCloses);
//   - every reply is well formed, answers an id a command used, with at
//     most as many final replies (USER, PASS, NOTFOUND, FAIL, OK, DONE)
//     for an id as commands used it; LIST and PENALTY lines only for
//     LIST and PENALTY ids;
//   - a REQUEST succeeds only with the (CPID, id, cookie) of one of the
//     harness's finished logins, for that login's user, once per login;
//   - a restricted connection never gets a USER, PASS or LIST line (no
//     account has the peer's uid);
//   - the server keeps serving: a second connection then gets alice's
//     userdb entry (and on auth-master a new login's REQUEST succeeds),
//     and shutdown leaves nothing running.
//
// Seeds: masterSeeds, the master- and userdb- transcripts, and
// testdata/fuzz/FuzzMasterSession.
func FuzzMasterSession(f *testing.F) {
	for _, s := range masterSeeds(f) {
		f.Add(s)
	}
	dbs := newFuzzDBs(f)
	f.Fuzz(func(t *testing.T, input string) {
		for _, st := range masterStates {
			t.Logf("state %s", st.name)
			runMasterState(t, dbs, st, input)
		}
	})
}

type masterState struct {
	name string
	// full: an auth-master socket; restrict: the auth-userdb 0666 rule
	// (net.Pipe has no peer credentials, so the peer is never the owner).
	full, restrict bool
	// version: VERSION goes first.
	version bool
}

var masterStates = []masterState{
	{name: "auth-master pre-handshake", full: true},
	{name: "auth-master", full: true, version: true},
	{name: "auth-userdb restricted", restrict: true, version: true},
}

// finishedLogin is a successful AUTH on the harness's login connection,
// waiting for its REQUEST.
type finishedLogin struct {
	id   uint32
	user string
}

// loginConn is the harness's login connection.
type loginConn struct {
	*pipeConn
	cpid   uint32
	cookie string
	done   []finishedLogin
}

func runMasterState(t *testing.T, dbs *fuzzDBs, st masterState, input string) {
	env := dbs.newEnv(t)
	csrv, cstop := env.clientServer(t)
	msrv, mstop := env.masterServer(t, dovecot.MasterConfig{Full: st.full, Restrict: st.restrict})
	var wg sync.WaitGroup
	lc := newLoginConn(t, &wg, csrv, unusedNumber(input, 100))
	m := connect(t, &wg, msrv.Serve)
	if st.version {
		m.send(t, "VERSION\t1\t1")
	}
	lines := fuzzLines(input)
	for i, l := range lines {
		l = strings.ReplaceAll(l, "$CPID", strconv.FormatUint(uint64(lc.cpid), 10))
		lines[i] = strings.ReplaceAll(l, "$COOKIE", lc.cookie)
	}
	// A command the reader answers itself marks the end of the input: its
	// reply proves every line before it has been handled. It is a protocol
	// error before VERSION, so it counts for masterCloses.
	last := strconv.FormatUint(uint64(unusedNumber(input, 1<<31)), 10)
	end, reply := "CACHE-FLUSH\t"+last+"\tnobody@invalid", "OK\t"+last+"\t"
	if !st.full {
		end, reply = "LIST\t"+last, "DONE\t"+last+"\t"
	}
	lines = append(lines, end)
	open := false
	if m.send(t, lines...) {
		_, open = m.waitFor(t, 0, "the reply to the last command", prefixed(reply))
	}
	switch closes := masterCloses(st, lines); {
	case !open && !closes:
		t.Fatalf("the server closed the connection without a protocol error; it sent %q", m.lines())
	case open && closes:
		t.Fatalf("the server kept the connection open after a protocol error; it sent %q", m.lines())
	}
	checkMasterServes(t, &wg, msrv, lc, st)
	mstop()
	got := m.finish(t)
	cstop()
	lc.finish(t)
	wg.Wait()
	if n := env.shared.Stats.Panics.Load(); n != 0 {
		t.Fatalf("%d panics recovered; the server sent %q", n, got)
	}
	if err := checkMasterTranscript(m.sent, got, lc, st.restrict); err != nil {
		t.Fatalf("%v\nsent %q\ngot %q", err, m.sent, got)
	}
}

// newLoginConn logs alice in, and carol through the master user, on a
// login socket, and fails one attempt from an address so that PENALTY
// has a key to list.
func newLoginConn(t *testing.T, wg *sync.WaitGroup, srv *dovecot.ClientServer, cpid uint32) *loginConn {
	t.Helper()
	c := connect(t, wg, srv.Serve)
	cookie := strings.TrimPrefix(c.mustWait(t, 0, "COOKIE", prefixed("COOKIE\t")), "COOKIE\t")
	c.send(t, "VERSION\t1\t2", "CPID\t"+strconv.FormatUint(uint64(cpid), 10),
		"AUTH\t1\tPLAIN\tservice=imap\tresp="+b64("\x00"+fuzzAlice+"\x00"+fuzzAlicePass),
		"AUTH\t2\tPLAIN\tservice=imap\tresp="+b64("\x00"+fuzzCarol+"*"+fuzzMaster+"\x00"+fuzzMasterPass),
		"AUTH\t3\tPLAIN\tservice=imap\trip=192.0.2.7\tresp="+b64("\x00"+fuzzAlice+"\x00wrong"))
	for _, want := range []string{"OK\t1\t", "OK\t2\t", "FAIL\t3\t"} {
		c.mustWait(t, 0, want, prefixed(want))
	}
	return &loginConn{pipeConn: c, cpid: cpid, cookie: cookie, done: []finishedLogin{{1, fuzzAlice}, {2, fuzzCarol}}}
}

// checkMasterServes looks alice up on a new connection and, on an
// auth-master socket, claims a new login with REQUEST.
func checkMasterServes(t *testing.T, wg *sync.WaitGroup, srv *dovecot.MasterServer, lc *loginConn, st masterState) {
	t.Helper()
	c := connect(t, wg, srv.Serve)
	c.send(t, "VERSION\t1\t1", "USER\t1\t"+fuzzAlice+"\tservice=imap")
	got := c.mustWait(t, 0, "a reply to USER", replyTo("1"))
	want := "USER\t1\t" + fuzzAlice + "\t"
	if st.restrict {
		want = "FAIL\t1"
	}
	if !strings.HasPrefix(got, want) {
		t.Fatalf("after the fuzzed connection, USER got %q, want %q…", got, want)
	}
	if st.full {
		from := lc.count()
		lc.send(t, "AUTH\t9\tPLAIN\tservice=imap\tresp="+b64("\x00"+fuzzAlice+"\x00"+fuzzAlicePass))
		lc.mustWait(t, from, "OK 9", prefixed("OK\t9\t"))
		c.send(t, fmt.Sprintf("REQUEST\t2\t%d\t9\t%s", lc.cpid, lc.cookie))
		if got := c.mustWait(t, 0, "a reply to REQUEST", replyTo("2")); !strings.HasPrefix(got, "USER\t2\t"+fuzzAlice+"\t") {
			t.Fatalf("after the fuzzed connection, REQUEST got %q", got)
		}
	}
	_ = c.nc.Close()
	<-c.done
}

// replyTo matches a master reply to id (the handshake's VERSION line has
// the same shape).
func replyTo(id string) func(string) bool {
	return func(l string) bool {
		f := strings.SplitN(l, "\t", 3)
		return len(f) >= 2 && f[0] != "VERSION" && f[1] == id
	}
}

// checkMasterTranscript is the oracle on what one master connection sent
// and got.
func checkMasterTranscript(sent, got []string, lc *loginConn, restricted bool) error {
	cmds, lists, penalties := map[uint32]int{}, map[uint32]bool{}, map[uint32]bool{}
	for _, l := range sent {
		f := fields(l)
		if len(f) < 2 {
			continue
		}
		id, ok := parseID(f[1])
		switch {
		case !ok:
		case f[0] == "LIST":
			lists[id] = true
			cmds[id]++
		case f[0] == "PENALTY":
			penalties[id] = true
			cmds[id]++
		case f[0] == "USER", f[0] == "PASS", f[0] == "REQUEST", f[0] == "CACHE-FLUSH", f[0] == "PENALTY-RESET":
			cmds[id]++
		}
	}
	terminal, claims := map[uint32]int{}, map[uint32]int{}
	for i, l := range got {
		f := dovecot.SplitLine(l)
		if i < 2 {
			if (i == 0 && l != "VERSION\t1\t1") || (i == 1 && !strings.HasPrefix(l, "SPID\t")) {
				return fmt.Errorf("handshake line %d is %q", i+1, l)
			}
			continue
		}
		var id uint32
		ok := len(f) >= 2
		if ok {
			id, ok = parseID(f[1])
		}
		if !ok || cmds[id] == 0 {
			return fmt.Errorf("reply %q is malformed or answers an id no command used", l)
		}
		switch f[0] {
		case "LIST", "PENALTY":
			if (f[0] == "LIST" && (!lists[id] || restricted)) || (f[0] == "PENALTY" && !penalties[id]) {
				return fmt.Errorf("%q answers no %s command it may answer", l, f[0])
			}
			continue
		case "USER", "PASS":
			if restricted {
				return fmt.Errorf("%q on a restricted connection", l)
			}
			if err := checkRequest(id, f, sent, lc, claims); err != nil {
				return fmt.Errorf("%q: %w", l, err)
			}
		case "NOTFOUND", "FAIL", "OK", "DONE":
		default:
			return fmt.Errorf("unknown reply %q", l)
		}
		if terminal[id]++; terminal[id] > cmds[id] {
			return fmt.Errorf("%d final replies for id %d after %d commands (the last %q)", terminal[id], id, cmds[id], l)
		}
	}
	return nil
}

// checkRequest: a USER reply with auth_mech is a REQUEST's success; some
// REQUEST line with its id must have named one of the harness's logins
// exactly, for the user the reply names, and each login is claimed once.
func checkRequest(reqID uint32, f, sent []string, lc *loginConn, claims map[uint32]int) error {
	if f[0] != "USER" || len(f) < 3 || !slicesContainsPrefix(f[3:], "auth_mech=") {
		return nil
	}
	for _, l := range sent {
		r := fields(l)
		if len(r) < 5 || r[0] != "REQUEST" {
			continue
		}
		rid, ok0 := parseID(r[1])
		if !ok0 || rid != reqID {
			continue
		}
		cpid, ok1 := parseID(r[2])
		id, ok2 := parseID(r[3])
		cookie, err := hex.DecodeString(r[4])
		want, _ := hex.DecodeString(lc.cookie)
		if !ok1 || !ok2 || err != nil || cpid != lc.cpid || !bytes.Equal(cookie, want) {
			continue
		}
		for _, d := range lc.done {
			if d.id == id && d.user == f[2] {
				if claims[id]++; claims[id] > 1 {
					return fmt.Errorf("login %d claimed twice", id)
				}
				return nil
			}
		}
	}
	return fmt.Errorf("a REQUEST succeeded without the (CPID, id, cookie) of a finished login for that user")
}

func slicesContainsPrefix(list []string, prefix string) bool {
	for _, s := range list {
		if strings.HasPrefix(s, prefix) {
			return true
		}
	}
	return false
}
