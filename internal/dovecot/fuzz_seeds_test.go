package dovecot_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The seeds of the session fuzzers, built from the secrets so that they
// stay right when those change: each command, each mechanism with a
// correct and a wrong or malformed payload, the exchanges that continue
// each state of clientStates, and the transcripts. Edge cases found by
// hand or by the fuzzer are files in testdata/fuzz.

// transcriptInputs returns the client side of every transcript under dir
// whose name passes keep: its C: lines, and its C+: long lines.
func transcriptInputs(tb testing.TB, dir string, keep func(name string) bool) []string {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "*.txt"))
	var out []string
	for _, file := range files {
		name := filepath.Base(file)
		if !keep(name) {
			continue
		}
		data, err := os.ReadFile(file)
		if err != nil {
			tb.Fatal(err)
		}
		var lines []string
		for raw := range strings.SplitSeq(string(data), "\n") {
			kind, text, _ := strings.Cut(strings.TrimRight(raw, " "), ": ")
			switch kind {
			case "C":
				lines = append(lines, unquote(text))
			case "C+":
				// As runTranscript builds it: size bytes with the LF.
				var size int
				fmt.Sscanf(text, "%d", &size)
				line := "AUTH\t1\tPLAIN\tservice=imap\tx=" + strings.Repeat("a", size)
				if strings.HasPrefix(name, "master-") || strings.HasPrefix(name, "userdb-") {
					line = "USER\t1\talice@example.com\tservice=imap\tx=" + strings.Repeat("a", size)
				}
				lines = append(lines, line[:size-1])
			}
		}
		if len(lines) > 0 {
			out = append(out, strings.Join(lines, "\n"))
		}
	}
	if len(out) == 0 {
		tb.Fatalf("no transcripts in %s", dir)
	}
	return out
}

func clientSeeds(tb testing.TB) []string {
	isClient := func(n string) bool { return !strings.HasPrefix(n, "master-") && !strings.HasPrefix(n, "userdb-") }
	all := func(string) bool { return true }
	seeds := transcriptInputs(tb, "testdata/transcripts", isClient)
	seeds = append(seeds, transcriptInputs(tb, "../sasl/testdata/transcripts", all)...)
	plain := func(id, authz, authc, pass string, params ...string) string {
		return strings.Join(append([]string{"AUTH", id, "PLAIN", "service=imap"}, params...), "\t") +
			"\tresp=" + b64(authz+"\x00"+authc+"\x00"+pass)
	}
	hello := "VERSION\t1\t2\nCPID\t4711\n"
	seeds = append(seeds,
		// PLAIN: right, wrong, master logins both ways, NUL and TAB tricks.
		hello+plain("2", "", fuzzAlice, fuzzAlicePass),
		plain("2", "", "alice", fuzzAlicePass, "rip=192.0.2.7", "lip=192.0.2.1", "secured=tls", "session=s1"),
		plain("2", "", fuzzAlice, "wrong", "rip=192.0.2.7"),
		plain("2", fuzzAlice, fuzzMaster, fuzzMasterPass),
		plain("2", "", fuzzCarol+"*"+fuzzMaster, fuzzMasterPass),
		plain("2", fuzzAlice, fuzzCarol, fuzzCarolPass),
		plain("2", "", fuzzAlice, fuzzAlicePass[:16]+"\x00"+fuzzAlicePass[16:]),
		plain("2", "", fuzzAlice+"\x00", fuzzAlicePass[:31]),
		"AUTH\t2\tPLAIN\tservice=imap\tresp="+b64("\x00"+fuzzAlice+"\x00x")+"\tresp="+b64("\x00"+fuzzAlice+"\x00"+fuzzAlicePass),
		"AUTH\t2\tPLAIN\tservice=imap\tfinal-resp-ok\tno-penalty\tdebug\tforward_fields=a=1\x01tb=2\tresp=",
		"AUTH\t2\tPLAIN\tservice=imap\nCONT\t2\t"+b64("\x00"+fuzzAlice+"\x00"+fuzzAlicePass),
		// Bad base64 fails the request, never the connection.
		"AUTH\t2\tPLAIN\tservice=imap\tresp=!!!\nAUTH\t3\tPLAIN\tservice=imap\tresp==",
		"CONT\t1\tAGFsaWNl\x01rAA==\nAUTH\t2\tLOGIN\tservice=imap\tresp=YQ",
		// LOGIN, pipelined and as the continuation of mid-LOGIN.
		"AUTH\t2\tLOGIN\tservice=smtp\tresp="+b64(fuzzAlice)+"\nCONT\t2\t"+b64(fuzzAlicePass),
		"CONT\t1\t"+b64(fuzzAlice)+"\nCONT\t1\t"+b64(fuzzAlicePass),
		"CONT\t1\t"+b64(fuzzAlice)+"\nCANCEL\t1\nCONT\t1\t"+b64("wrong"),
		"CONT\t1\t"+b64(fuzzAlice+"\x00")+"\nCONT\t1\t",
		// SCRAM: the client-final message of mid-SCRAM (the fuzzer cannot
		// know the server nonce), and a fresh exchange.
		"CONT\t1\t"+b64("c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHpiA+F1HnHaYp3Y6bzUWVE3WNPFoXuKlUyYa1Gbxp0="),
		"CONT\t1\t"+b64("c=eSws,r=x,p=,p=AA==")+"\nCONT\t1\t",
		"AUTH\t2\tSCRAM-SHA-1\tservice=imap\tresp="+b64("n,a="+fuzzAlice+",n="+fuzzMaster+",r=abc"),
		"AUTH\t2\tSCRAM-SHA-256\tservice=imap\tresp="+b64("p=tls-unique,,n=alice,r=abc"),
		// DIGEST-MD5: a response to mid-DIGEST-MD5's challenge.
		"CONT\t1\t"+b64(`username="alice@example.com",realm="example.com",nonce="AAAA",cnonce="BBBB",nc=00000001,qop=auth,digest-uri="imap/mail.example.com",response=00000000000000000000000000000000,charset=utf-8`),
		"CONT\t1\t"+b64(`username="alice",username="bob",nonce,realm="a\"b",qop=auth-int,nc=1`),
		// CRAM-MD5, APOP, ANONYMOUS, EXTERNAL, OAUTHBEARER, XOAUTH2.
		"AUTH\t2\tCRAM-MD5\tservice=imap\nCONT\t2\t"+b64(fuzzAlice+" 0123456789abcdef0123456789abcdef"),
		"AUTH\t2\tAPOP\tservice=pop3\tresp="+b64("<1092.7.6b02c18f.AAAA@vm>\x00"+fuzzAlice+"\x000123456789abcdef"),
		"AUTH\t2\tANONYMOUS\tservice=imap\tresp="+b64("trace@example.com"),
		"AUTH\t2\tEXTERNAL\tservice=imap\tvalid-client-cert\tcert_username="+fuzzAlice+"\tresp=",
		"AUTH\t2\tOAUTHBEARER\tservice=imap\tresp="+b64("n,a="+fuzzAlice+",\x01host=mail\x01port=143\x01auth=Bearer "+fuzzAlicePass+"\x01\x01"),
		"AUTH\t2\tXOAUTH2\tservice=imap\tresp="+b64("user="+fuzzAlice+"\x01auth=Bearer "+fuzzAlicePass+"\x01\x01"),
		"AUTH\t2\tXOAUTH2\tservice=imap\tresp="+b64("user="+fuzzAlice+"\x01auth=Bearer "+fuzzAlicePass[:20]+"\x01\x01"),
		// Payloads the harness encodes (encodePayloads), for the fuzzer to
		// mutate the mechanisms' bytes.
		"AUTH\t2\tPLAIN\tservice=imap\tresp=~\x00"+fuzzAlice+"\x00"+fuzzAlicePass,
		"AUTH\t2\tPLAIN\tservice=imap\tresp=~"+fuzzAlice+"\x00"+fuzzMaster+"\x00"+fuzzMasterPass,
		"AUTH\t2\tPLAIN\tservice=imap\tresp=~\x00"+fuzzAlice+"\x00wrong",
		"CONT\t1\t~"+fuzzAlice+"\nCONT\t1\t~"+fuzzAlicePass,
		"CONT\t1\t~c=biws,r=rOprNGfwEbeRWgbNEkqO,p=dHpiA+F1HnHaYp3Y6bzUWVE3WNPFoXuKlUyYa1Gbxp0=",
		`CONT`+"\t1\t~"+`username="alice@example.com",realm="example.com",nonce="x",cnonce="y",nc=00000001,qop=auth,digest-uri="imap/x",response=0123456789abcdef0123456789abcdef`,
		"AUTH\t2\tSCRAM-SHA-1\tservice=imap\tresp=~n,,n=alice,r=abc",
		"AUTH\t2\tOAUTHBEARER\tservice=imap\tresp=~n,a="+fuzzAlice+",\x01auth=Bearer "+fuzzAlicePass+"\x01\x01",
		"AUTH\t2\tXOAUTH2\tservice=imap\tresp=~user="+fuzzAlice+"\x01auth=Bearer x\x01\x01",
		"AUTH\t2\tANONYMOUS\tservice=imap\tresp=~",
		"AUTH\t2\tEXTERNAL\tservice=imap\tvalid-client-cert\tcert_username=alice\tresp=~alice",
		"AUTH\t2\tAPOP\tservice=pop3\tresp=~<1092.1.6b02c18f.AAAA@vm>\x00"+fuzzAlice+"\x000123456789abcdef",
		"AUTH\t2\tCRAM-MD5\tservice=imap\nCONT\t2\t~"+fuzzAlice+" 0123456789abcdef0123456789abcdef",
		// Ids: reuse after OK (after-OK), CANCEL, a pending duplicate, CONT
		// for a finished request.
		plain("1", "", fuzzCarol, fuzzCarolPass)+"\nCONT\t1\tAA==\nCANCEL\t1",
		"AUTH\t2\tLOGIN\tservice=smtp\nAUTH\t2\tLOGIN\tservice=smtp",
		"CANCEL\t1\nCONT\t1\t"+b64(fuzzAlice),
		// The address budget of the brute-force defence.
		strings.Repeat(plain("3", "", fuzzAlice, "wrong", "rip=192.0.2.7")+"\n", 22)+plain("4", "", fuzzAlice, fuzzAlicePass, "rip=192.0.2.7"),
	)
	return seeds
}

func masterSeeds(tb testing.TB) []string {
	isMaster := func(n string) bool { return strings.HasPrefix(n, "master-") || strings.HasPrefix(n, "userdb-") }
	seeds := transcriptInputs(tb, "testdata/transcripts", isMaster)
	req := "REQUEST\t%s\t$CPID\t%s\t$COOKIE"
	seeds = append(seeds,
		"VERSION\t1\t1\nUSER\t1\t"+fuzzAlice+"\tservice=imap",
		"USER\t1\talice\tservice=imap\trip=192.0.2.1\tlip=192.0.2.2\tsession=s\tdebug",
		"USER\t1\tnosuch@example.com\tservice=imap\nPASS\t2\t"+fuzzCarol+"\tservice=imap",
		"PASS\t1\t"+fuzzAlice+"\tservice=imap\nPASS\t2\tnosuch\tservice=imap",
		"LIST\t1\tuser=a*\nLIST\t2\nLIST\t3\tuser=*\tservice=doveadm",
		fmt.Sprintf(req, "1", "1"),
		fmt.Sprintf(req, "1", "1")+"\n"+fmt.Sprintf(req, "2", "1"),
		fmt.Sprintf(req, "1", "2")+"\tsession_pid=1\trequest_auth_token",
		fmt.Sprintf(req, "1", "2")+"\tsession_pid=-1\trequest_auth_token\n"+fmt.Sprintf(req, "2", "2"),
		"REQUEST\t1\t$CPID\t1\t00000000000000000000000000000000",
		"REQUEST\t1\t$CPID\t1\t$COOKIE00\nREQUEST\t2\t1\t1\t$COOKIE",
		"CACHE-FLUSH\t1\nCACHE-FLUSH\t2\t"+fuzzAlice+"\t"+fuzzCarol,
		"PENALTY\t1\nPENALTY\t2\t1\nPENALTY-RESET\t3\tip\t192.0.2.7\nPENALTY\t4",
		"PENALTY-RESET\t1\taccount\t"+fuzzAlice+"\nPENALTY-RESET\t2\tprefix\t192.0.2.0/24\nPENALTY-RESET\t3\tnope\tx",
		"USER\t1\t"+fuzzAlice+"\tservice=imap\nUSER\t1\t"+fuzzCarol+"\tservice=imap",
	)
	return seeds
}
