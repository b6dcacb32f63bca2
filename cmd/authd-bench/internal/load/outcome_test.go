package load

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAuthServer answers every AUTH (client protocol) or USER (master
// protocol) request with answer, formatted with the request's id; with an
// empty answer it completes the handshake and then never answers.
func fakeAuthServer(t *testing.T, master bool, answer string) string {
	return serveUnix(t, func(c net.Conn) {
		if master {
			c.Write([]byte("VERSION\t1\t0\nSPID\t1\n"))
		} else {
			c.Write([]byte(clientHandshake))
		}
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			f := strings.Split(sc.Text(), "\t")
			if answer != "" && len(f) > 1 && (f[0] == "AUTH" || f[0] == "USER") {
				fmt.Fprintf(c, answer+"\n", f[1])
			}
		}
	})
}

// clientHandshake is a Dovecot client-protocol server's handshake.
const clientHandshake = "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nSPID\t1\nCUID\t1\nCOOKIE\t00\nDONE\n"

// serveUnix listens on a unix socket in a temporary directory and serves
// every connection with serve (which need not close it) until the test
// ends; it returns the socket's path.
func serveUnix(t *testing.T, serve func(c net.Conn)) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "auth")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				serve(c)
			})
		}
	})
	return sock
}

// TestOutcomes: each kind of answer is counted where the report says —
// in particular a temporary failure is never counted as a wrong password.
func TestOutcomes(t *testing.T) {
	users, _ := GenerateUsers(10, "", "")
	for _, tc := range []struct {
		proto, answer string
		want          func(Counts) int64
	}{
		{"client", "OK\t%s\tuser=x", func(c Counts) int64 { return c.OK }},
		{"client", "FAIL\t%s\tuser=x", func(c Counts) int64 { return c.Fail }},
		{"client", "FAIL\t%s\tcode=temp_fail\tuser=x", func(c Counts) int64 { return c.TempFail }},
		{"master", "USER\t%s\tx\tuid=1", func(c Counts) int64 { return c.OK }},
		{"master", "NOTFOUND\t%s", func(c Counts) int64 { return c.Fail }},
		{"master", "FAIL\t%s\treason=db down", func(c Counts) int64 { return c.TempFail }},
	} {
		sock := fakeAuthServer(t, tc.proto == "master", tc.answer)
		res, err := Run(t.Context(), Config{
			Target: Target{Network: "unix", Address: sock}, Protocols: Builtin(), Protocol: tc.proto, Conns: 2, Depth: 2,
			Duration: 5 * time.Second, MaxRequests: 40, Users: users,
		})
		if err != nil {
			t.Fatalf("%s %q: %v", tc.proto, tc.answer, err)
		}
		if res.Requests != 40 || tc.want(res.Counts) != 40 {
			t.Errorf("%s %q: %d requests, counts %+v", tc.proto, tc.answer, res.Requests, res.Counts)
		}
		// The same numbers in both reports.
		var js bytes.Buffer
		if err := res.WriteJSON(&js); err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Requests int64              `json:"requests"`
			OK       int64              `json:"ok"`
			Fail     int64              `json:"fail"`
			TempFail int64              `json:"tempfail"`
			Latency  map[string]float64 `json:"latency_ms"`
		}
		if err := json.Unmarshal(js.Bytes(), &doc); err != nil {
			t.Fatalf("JSON report: %v\n%s", err, js.String())
		}
		if doc.Requests != 40 || doc.OK+doc.Fail+doc.TempFail != 40 || doc.OK != res.OK || doc.Fail != res.Fail || doc.TempFail != res.TempFail {
			t.Errorf("JSON report disagrees: %s", js.String())
		}
		for _, k := range []string{"p50", "p90", "p99", "p99_9", "max"} {
			if _, ok := doc.Latency[k]; !ok {
				t.Errorf("JSON report has no latency %s: %s", k, js.String())
			}
		}
		var txt bytes.Buffer
		if err := res.WriteText(&txt); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("requests    40: ok %d, fail %d, tempfail %d, errors 0", res.OK, res.Fail, res.TempFail)
		if !strings.Contains(txt.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, txt.String())
		}
	}
}
