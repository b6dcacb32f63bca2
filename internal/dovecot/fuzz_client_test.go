package dovecot_test

import (
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/authd-project/authd/internal/dovecot"
)

// FuzzClientSession drives whole client-protocol connections (a login
// socket with every mechanism) with the input's lines, replayed in each
// state of clientStates: before the handshake, after VERSION/CPID, in the
// middle of a LOGIN, SCRAM-SHA-256 and DIGEST-MD5 exchange, and after a
// successful AUTH. A payload written "~bytes" is sent base64-encoded
// (encodePayloads). The oracle (checkClientTranscript and the checks
// around it), per state:
//
//   - no panic, recovered or not: Shared.Stats.Panics stays 0;
//   - the connection closes exactly on protocol errors (clientCloses),
//     never on a bad payload;
//   - every reply is well formed and answers an id the client used, and
//     an AUTH gets at most one OK or FAIL;
//   - an OK names an account whose password (or the master user's) the
//     input carried in some form the server reads (secretSeen), or is
//     the ANONYMOUS user;
//   - the server keeps serving: a second connection then logs alice in
//     with PLAIN, and shutdown leaves nothing running.
//
// Seeds: clientSeeds, the transcripts of this package and of
// internal/sasl, and testdata/fuzz/FuzzClientSession.
func FuzzClientSession(f *testing.F) {
	for _, s := range clientSeeds(f) {
		f.Add(s)
	}
	dbs := newFuzzDBs(f)
	f.Fuzz(func(t *testing.T, input string) {
		for _, st := range clientStates {
			t.Logf("state %s", st.name)
			runClientState(t, dbs, st, input)
		}
	})
}

// clientState is a state the harness drives a connection into before
// the input's lines.
type clientState struct {
	name string
	// handshake: VERSION and CPID go first.
	handshake bool
	// auth is an AUTH line with id 1 and want the prefix of the reply it
	// waits for ("" for neither).
	auth, want string
}

var clientStates = []clientState{
	{name: "pre-handshake"},
	{name: "handshake", handshake: true},
	{name: "mid-LOGIN", handshake: true, auth: "AUTH\t1\tLOGIN\tservice=smtp\trip=192.0.2.10", want: "CONT\t1\t"},
	// SCRAM after the client-first message: the input continues with a
	// client-final message.
	{name: "mid-SCRAM", handshake: true, want: "CONT\t1\t",
		auth: "AUTH\t1\tSCRAM-SHA-256\tservice=imap\tresp=" + b64("n,,n="+fuzzAlice+",r=rOprNGfwEbeRWgbNEkqO")},
	{name: "mid-DIGEST-MD5", handshake: true, auth: "AUTH\t1\tDIGEST-MD5\tservice=imap", want: "CONT\t1\t"},
	{name: "after-OK", handshake: true, want: "OK\t1\t",
		auth: "AUTH\t1\tPLAIN\tservice=imap\tresp=" + b64("\x00"+fuzzCarol+"\x00"+fuzzCarolPass)},
}

// runClientState replays input on a fresh server in state st and checks
// the oracle.
func runClientState(t *testing.T, dbs *fuzzDBs, st clientState, input string) {
	env := dbs.newEnv(t)
	srv, stop := env.clientServer(t)
	var wg sync.WaitGroup
	c := connect(t, &wg, srv.Serve)
	cpid := unusedNumber(input, 100)
	if st.handshake {
		c.send(t, "VERSION\t1\t2", "CPID\t"+strconv.FormatUint(uint64(cpid), 10))
	}
	if st.auth != "" {
		c.send(t, st.auth)
		c.mustWait(t, 0, "the reply to "+st.name+"'s AUTH", prefixed(st.want))
	}
	lines := fuzzLines(input)
	for i, l := range lines {
		lines[i] = encodePayloads(l)
	}
	// A CONT for an id nobody used is answered at once by the reader: its
	// FAIL proves every line before it has been read and handled. It is a
	// protocol error before CPID, so it counts for clientCloses.
	last := strconv.FormatUint(uint64(unusedNumber(input, 1<<31)), 10)
	lines = append(lines, "CONT\t"+last+"\tAA==")
	open := false
	if c.send(t, lines...) {
		_, open = c.waitFor(t, 0, "the reply to the last CONT", prefixed("FAIL\t"+last+"\t"))
	}
	switch may, must := clientCloses(st, lines); {
	case !open && !may:
		t.Fatalf("the server closed the connection without a protocol error; it sent %q", c.lines())
	case open && must:
		t.Fatalf("the server kept the connection open after a protocol error; it sent %q", c.lines())
	}
	checkClientServes(t, &wg, srv, unusedNumber(input, cpid+1))
	stop()
	got := c.finish(t)
	wg.Wait()
	if n := env.shared.Stats.Panics.Load(); n != 0 {
		t.Fatalf("%d panics recovered; the server sent %q", n, got)
	}
	if err := checkClientTranscript(c.sent, got); err != nil {
		t.Fatalf("%v\nsent %q\ngot %q", err, c.sent, got)
	}
}

// encodePayloads sends a payload written "~bytes" (as resp=~bytes, or as
// CONT's data) base64-encoded, so that the fuzzer can mutate what a
// mechanism parses rather than its encoding.
func encodePayloads(line string) string {
	f := strings.Split(line, "\t")
	for i, x := range f {
		if v, ok := strings.CutPrefix(x, "resp=~"); ok {
			f[i] = "resp=" + b64(v)
		} else if v, ok := strings.CutPrefix(x, "~"); ok && i == 2 && f[0] == "CONT" {
			f[i] = b64(v)
		}
	}
	return strings.Join(f, "\t")
}

// checkClientServes logs alice in on a new connection.
func checkClientServes(t *testing.T, wg *sync.WaitGroup, srv *dovecot.ClientServer, cpid uint32) {
	t.Helper()
	c := connect(t, wg, srv.Serve)
	c.mustWait(t, 0, "the handshake", func(l string) bool { return l == "DONE" })
	c.send(t, "VERSION\t1\t2", "CPID\t"+strconv.FormatUint(uint64(cpid), 10),
		"AUTH\t1\tPLAIN\tservice=imap\tresp="+b64("\x00"+fuzzAlice+"\x00"+fuzzAlicePass))
	got := c.mustWait(t, 0, "a reply to a good PLAIN login", func(l string) bool {
		return strings.HasPrefix(l, "OK\t") || strings.HasPrefix(l, "FAIL\t")
	})
	if got != "OK\t1\tuser="+fuzzAlice {
		t.Fatalf("after the fuzzed connection, a good login got %q", got)
	}
	_ = c.nc.Close()
	<-c.done
}

// checkClientTranscript is the oracle on what one connection sent and got.
func checkClientTranscript(sent, got []string) error {
	auths, conts := map[uint32]int{}, map[uint32]int{}
	for _, l := range sent {
		if f := fields(l); len(f) >= 2 {
			if id, ok := parseID(f[1]); ok && f[0] == "AUTH" {
				auths[id]++
			} else if ok && f[0] == "CONT" {
				conts[id]++
			}
		}
	}
	terminal, stray := map[uint32]int{}, map[uint32]int{}
	handshake := true
	for _, l := range got {
		f := dovecot.SplitLine(l)
		switch f[0] {
		case "VERSION", "MECH", "SPID", "CUID", "COOKIE", "DONE":
			if !handshake {
				return fmt.Errorf("handshake line %q after the handshake", l)
			}
			handshake = f[0] != "DONE"
			continue
		case "OK", "FAIL", "CONT":
		default:
			return fmt.Errorf("unknown reply %q", l)
		}
		var id uint32
		ok := !handshake && len(f) >= 2
		if ok {
			id, ok = parseID(f[1])
		}
		switch {
		case !ok:
			return fmt.Errorf("malformed reply %q", l)
		case auths[id] == 0 && conts[id] == 0:
			return fmt.Errorf("reply %q to an id the client never used", l)
		case f[0] == "CONT" && auths[id] == 0:
			return fmt.Errorf("challenge %q for an id no AUTH used", l)
		case f[0] == "CONT":
		case f[0] == "FAIL" && hasField(f, "reason=Authentication request timed out"):
			// The answer to a CONT whose request is gone.
			if stray[id]++; stray[id] > conts[id] {
				return fmt.Errorf("more %q than CONT lines for it", l)
			}
		default:
			if terminal[id]++; terminal[id] > auths[id] {
				return fmt.Errorf("%d OK/FAIL replies for id %d after %d AUTH lines (the last %q)", terminal[id], id, auths[id], l)
			}
			if f[0] == "OK" {
				if err := checkOK(f, sent); err != nil {
					return fmt.Errorf("%q: %w", l, err)
				}
			}
		}
	}
	return nil
}

// checkOK: an OK needs the password of its user (or the master user's)
// in the input, unless it is the anonymous login.
func checkOK(f []string, sent []string) error {
	var user string
	for _, kv := range f[2:] {
		if v, ok := strings.CutPrefix(kv, "user="); ok {
			user = v
			break
		}
	}
	if hasField(f, "anonymous") {
		if user != fuzzAnonymous {
			return fmt.Errorf("an anonymous login as %q", user)
		}
		return nil
	}
	if secretSeen(sent, fuzzMasterPass) {
		return nil
	}
	if pw, ok := fuzzPasswords[user]; ok && secretSeen(sent, pw) {
		return nil
	}
	return fmt.Errorf("OK for %q, whose password the input never carried", user)
}

func hasField(f []string, want string) bool {
	for _, x := range f[1:] {
		if x == want {
			return true
		}
	}
	return false
}
