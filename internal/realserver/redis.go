package realserver

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Private Redis servers (redis-server, redis-sentinel, redis-cli from
// Debian's redis-server, redis-sentinel and redis-tools; Valkey's
// binaries take the same arguments): standalone, a Sentinel set and a
// Cluster, each on free loopback ports in its own directory, persistence
// off, so that a test owns everything it talks to. The recipes and their
// timings are in docs/testing.md §8.2.

// RedisOptions configures the Redis launchers.
type RedisOptions struct {
	Instance
	// Password, when set, is requirepass (and masterauth for replicas).
	Password string
	// TLS, when set, makes a standalone server (StartRedis) also serve
	// TLS on a port of its own (Redis.TLSAddr) with these files; client
	// certificates are optional.
	TLS *TLSFiles
}

// Redis is one private redis-server. Kill, Restart and Stop are the
// server's; Pause and Resume hang it (SIGSTOP) and let it go on.
type Redis struct {
	Dir  string
	Port int
	Addr string // 127.0.0.1:Port
	Log  string
	// TLSAddr is the TLS listener's address (RedisOptions.TLS), or "".
	TLSAddr string

	server
}

// redisArgs are every server's: loopback, no persistence, no daemon.
func redisArgs(bin, dir, log string, port int, password string) []string {
	args := []string{bin, "--bind", "127.0.0.1", "--port", strconv.Itoa(port), "--dir", dir,
		"--save", "", "--appendonly", "no", "--logfile", log, "--daemonize", "no",
		// A replica's first sync must not wait the default 5 s.
		"--repl-diskless-sync-delay", "0"}
	if password != "" {
		args = append(args, "--requirepass", password, "--masterauth", password)
	}
	return args
}

// startRedisNode starts one redis-server with extra arguments and waits
// until it answers PING.
func startRedisNode(ctx context.Context, o RedisOptions, name string, extra ...string) (*Redis, error) {
	bins, err := lookBins("redis-server")
	if err != nil {
		return nil, err
	}
	port, err := o.port()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Dir, name)
	if err := Mkdirs(dir); err != nil {
		return nil, err
	}
	r := &Redis{Dir: dir, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Log: filepath.Join(dir, "redis.log"), server: server{grace: 5 * time.Second}}
	argv := append(redisArgs(bins[0], dir, r.Log, port, o.Password), extra...)
	if o.TLS != nil {
		tport, err := o.port()
		if err != nil {
			return nil, err
		}
		r.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(tport))
		argv = append(argv, "--tls-port", strconv.Itoa(tport), "--tls-cert-file", o.TLS.Cert, "--tls-key-file", o.TLS.Key,
			"--tls-ca-cert-file", o.TLS.CA, "--tls-auth-clients", "optional")
	}
	probe := func(ctx context.Context) error {
		out, err := RedisDo(ctx, r.Addr, o.Password, "PING")
		if err == nil && (len(out) != 1 || out[0] != "PONG") {
			err = fmt.Errorf("PING answered %q", out)
		}
		return err
	}
	r.launch = func(ctx context.Context) (*Proc, error) {
		return startAndWait(ctx, o.Instance, "redis-server "+name, filepath.Join(dir, "stdout"), 10*time.Second, probe, argv, r.Log)
	}
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// StartRedis starts a standalone server (ready in ≈40 ms). The caller must
// Stop it.
func StartRedis(ctx context.Context, o RedisOptions) (*Redis, error) {
	return startRedisNode(ctx, o, "redis")
}

// Pause stops the server with SIGSTOP: its connections stay open and
// nothing answers, as on a hung host.
func (r *Redis) Pause() { r.signal(syscall.SIGSTOP) }

// Resume continues a paused server (SIGCONT).
func (r *Redis) Resume() { r.signal(syscall.SIGCONT) }

func (r *Redis) signal(sig syscall.Signal) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.proc != nil && !r.proc.Exited() {
		_ = syscall.Kill(r.proc.PID(), sig)
	}
}

// Stop stops the server; a paused one is resumed first so that it can.
func (r *Redis) Stop() {
	r.Resume()
	r.server.Stop()
}

// RedisSentinel is a master, one replica and three sentinels (quorum 2)
// monitoring it as MasterName. Ready once every sentinel knows the
// replica and the two other sentinels (≈2.2 s).
type RedisSentinel struct {
	MasterName string
	Master     *Redis
	Replica    *Redis
	Sentinels  []*Redis
	// Addrs are the sentinels' addresses, what a client is given.
	Addrs []string
}

// StartRedisSentinel starts the set. The caller must Stop it.
func StartRedisSentinel(ctx context.Context, o RedisOptions) (*RedisSentinel, error) {
	bins, err := lookBins("redis-server", "redis-sentinel")
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{MasterName: "authd"}
	if s.Master, err = startRedisNode(ctx, o, "master"); err != nil {
		return nil, err
	}
	if s.Replica, err = startRedisNode(ctx, o, "replica", "--replicaof", "127.0.0.1", strconv.Itoa(s.Master.Port)); err != nil {
		s.Stop()
		return nil, err
	}
	if err := waitFor(ctx, 10*time.Second, func(ctx context.Context) error {
		return infoHas(ctx, s.Replica.Addr, o.Password, "replication", "master_link_status:up")
	}); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis replica never linked: %w", err)
	}
	for i := range 3 {
		sn, err := s.startSentinel(ctx, o, bins[1], i)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.Sentinels = append(s.Sentinels, sn)
		s.Addrs = append(s.Addrs, sn.Addr)
	}
	if err := waitFor(ctx, 20*time.Second, s.discovered); err != nil {
		s.Stop()
		return nil, fmt.Errorf("redis sentinels never saw each other: %w", err)
	}
	return s, nil
}

// startSentinel starts sentinel i; it rewrites its configuration file,
// which therefore lives in its own directory.
func (s *RedisSentinel) startSentinel(ctx context.Context, o RedisOptions, bin string, i int) (*Redis, error) {
	port, err := o.port()
	if err != nil {
		return nil, err
	}
	dir := filepath.Join(o.Dir, "sentinel"+strconv.Itoa(i))
	if err := Mkdirs(dir); err != nil {
		return nil, err
	}
	r := &Redis{Dir: dir, Port: port, Addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		Log: filepath.Join(dir, "sentinel.log"), server: server{grace: 5 * time.Second}}
	conf := fmt.Sprintf("bind 127.0.0.1\nport %d\ndir %s\nlogfile %s\n"+
		"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %[4]s 1000\n"+
		"sentinel failover-timeout %[4]s 5000\nsentinel parallel-syncs %[4]s 1\n", port, dir, r.Log, s.MasterName, s.Master.Port)
	if o.Password != "" {
		conf += fmt.Sprintf("sentinel auth-pass %s %s\n", s.MasterName, o.Password)
	}
	path := filepath.Join(dir, "sentinel.conf")
	if err := WriteFile(path, []byte(conf)); err != nil {
		return nil, err
	}
	probe := func(ctx context.Context) error { _, err := RedisDo(ctx, r.Addr, "", "PING"); return err }
	r.launch = func(ctx context.Context) (*Proc, error) {
		return startAndWait(ctx, o.Instance, "redis-sentinel", filepath.Join(dir, "stdout"), 10*time.Second, probe, []string{bin, path}, r.Log)
	}
	if err := r.run(ctx); err != nil {
		return nil, err
	}
	return r, nil
}

// discovered: every sentinel knows the two others and the replica.
func (s *RedisSentinel) discovered(ctx context.Context) error {
	for _, sn := range s.Sentinels {
		out, err := RedisDo(ctx, sn.Addr, "", "SENTINEL", "MASTER", s.MasterName)
		if err != nil {
			return err
		}
		if v := pairValue(out, "num-other-sentinels"); v != "2" {
			return fmt.Errorf("sentinel %s sees %s other sentinels", sn.Addr, v)
		}
		if v := pairValue(out, "num-slaves"); v != "1" {
			return fmt.Errorf("sentinel %s sees %s replicas", sn.Addr, v)
		}
	}
	return nil
}

// MasterAddr is the master's address as the sentinels report it now.
func (s *RedisSentinel) MasterAddr(ctx context.Context) (string, error) {
	var last error
	for _, sn := range s.Sentinels {
		out, err := RedisDo(ctx, sn.Addr, "", "SENTINEL", "GET-MASTER-ADDR-BY-NAME", s.MasterName)
		if err == nil && len(out) == 2 {
			return net.JoinHostPort(out[0], out[1]), nil
		}
		last = err
	}
	return "", fmt.Errorf("no sentinel named the master: %v", last)
}

// Stop stops every process of the set.
func (s *RedisSentinel) Stop() {
	var wg sync.WaitGroup
	for _, r := range append(append([]*Redis{}, s.Sentinels...), s.Master, s.Replica) {
		if r != nil {
			wg.Go(r.Stop)
		}
	}
	wg.Wait()
}

// RedisCluster is a Redis Cluster of three masters without replicas,
// every slot covered (≈2.1 s to start). Its nodes keep serving their own
// slots when another fails (cluster-require-full-coverage no).
type RedisCluster struct {
	Nodes []*Redis
	Addrs []string
	cli   string
	pass  string
}

// StartRedisCluster starts the nodes and joins them with redis-cli
// --cluster create. The caller must Stop it.
func StartRedisCluster(ctx context.Context, o RedisOptions) (*RedisCluster, error) {
	bins, err := lookBins("redis-server", "redis-cli")
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{cli: bins[1], pass: o.Password}
	for i := range 3 {
		bus, err := o.port()
		if err != nil {
			c.Stop()
			return nil, err
		}
		n, err := startRedisNode(ctx, o, "node"+strconv.Itoa(i), "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf", "--cluster-port", strconv.Itoa(bus), "--cluster-node-timeout", "2000",
			"--cluster-require-full-coverage", "no", "--cluster-allow-reads-when-down", "yes")
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.Nodes = append(c.Nodes, n)
		c.Addrs = append(c.Addrs, n.Addr)
	}
	args := append([]string{c.cli}, c.auth()...)
	args = append(append(args, "--cluster", "create"), c.Addrs...)
	if _, err := RunCmd(ctx, CleanEnv(), "", append(args, "--cluster-replicas", "0", "--cluster-yes")...); err != nil {
		c.Stop()
		return nil, err
	}
	if err := waitFor(ctx, 20*time.Second, c.allOK); err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis cluster never became ok: %w", err)
	}
	return c, nil
}

func (c *RedisCluster) auth() []string {
	if c.pass == "" {
		return nil
	}
	return []string{"--no-auth-warning", "-a", c.pass}
}

// allOK: every node reports cluster_state:ok.
func (c *RedisCluster) allOK(ctx context.Context) error {
	for _, n := range c.Nodes {
		if err := infoHas(ctx, n.Addr, c.pass, "", "cluster_state:ok", "CLUSTER", "INFO"); err != nil {
			return err
		}
	}
	return nil
}

// NodeID is the cluster id of node i.
func (c *RedisCluster) NodeID(ctx context.Context, i int) (string, error) {
	out, err := RedisDo(ctx, c.Nodes[i].Addr, c.pass, "CLUSTER", "MYID")
	if err != nil || len(out) != 1 {
		return "", fmt.Errorf("CLUSTER MYID: %q %v", out, err)
	}
	return out[0], nil
}

// Reshard moves slots slots, with their keys, from node from to node to
// (redis-cli --cluster reshard), as an operator rebalancing would.
func (c *RedisCluster) Reshard(ctx context.Context, from, to, slots int) error {
	fromID, err := c.NodeID(ctx, from)
	if err != nil {
		return err
	}
	toID, err := c.NodeID(ctx, to)
	if err != nil {
		return err
	}
	args := append([]string{c.cli}, c.auth()...)
	args = append(args, "--cluster", "reshard", c.Addrs[0], "--cluster-from", fromID, "--cluster-to", toID,
		"--cluster-slots", strconv.Itoa(slots), "--cluster-yes", "--cluster-pipeline", "100")
	_, err = RunCmd(ctx, CleanEnv(), "", args...)
	return err
}

// Stop stops every node.
func (c *RedisCluster) Stop() {
	var wg sync.WaitGroup
	for _, n := range c.Nodes {
		wg.Go(n.Stop)
	}
	wg.Wait()
}

// waitFor polls check until it succeeds, ctx ends or timeout passes.
func waitFor(ctx context.Context, timeout time.Duration, check func(context.Context) error) error {
	deadline := time.Now().Add(timeout)
	for {
		cctx, cancel := context.WithTimeout(ctx, time.Second)
		err := check(cctx)
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return err
		}
		if !sleep(ctx, 20*time.Millisecond) {
			return ctx.Err()
		}
	}
}

// infoHas checks that the reply to INFO section (or to cmd) contains
// want.
func infoHas(ctx context.Context, addr, password, section, want string, cmd ...string) error {
	if len(cmd) == 0 {
		cmd = []string{"INFO", section}
	}
	out, err := RedisDo(ctx, addr, password, cmd...)
	if err != nil {
		return err
	}
	if !strings.Contains(strings.Join(out, "\n"), want) {
		return fmt.Errorf("%s: no %q yet", addr, want)
	}
	return nil
}

// pairValue finds key's value in a flat key, value, … reply.
func pairValue(out []string, key string) string {
	for i := 0; i+1 < len(out); i += 2 {
		if out[i] == key {
			return out[i+1]
		}
	}
	return ""
}

// RedisDo sends one command to addr (after AUTH when password is set)
// and returns the reply flattened to strings: enough for the launchers'
// probes, without a client library. An error reply is an error.
func RedisDo(ctx context.Context, addr, password string, args ...string) ([]string, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	rd := bufio.NewReader(conn)
	if password != "" {
		if _, err := redisRoundTrip(conn, rd, "AUTH", password); err != nil {
			return nil, err
		}
	}
	return redisRoundTrip(conn, rd, args...)
}

func redisRoundTrip(conn net.Conn, rd *bufio.Reader, args ...string) ([]string, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := conn.Write([]byte(b.String())); err != nil {
		return nil, err
	}
	var out []string
	err := readRESP(rd, &out, 0)
	return out, err
}

var errRESP = errors.New("malformed reply")

// readRESP reads one RESP2 reply into out.
func readRESP(rd *bufio.Reader, out *[]string, depth int) error {
	line, err := rd.ReadString('\n')
	if err != nil {
		return err
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" || depth > 8 {
		return errRESP
	}
	switch line[0] {
	case '+', ':':
		*out = append(*out, line[1:])
	case '-':
		return fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > 16<<20 {
			return errRESP
		}
		if n < 0 {
			return nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return err
		}
		*out = append(*out, string(buf[:n]))
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n > 1<<16 {
			return errRESP
		}
		for range n {
			if err := readRESP(rd, out, depth+1); err != nil {
				return err
			}
		}
	default:
		return errRESP
	}
	return nil
}
