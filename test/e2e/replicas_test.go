package e2e

import (
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mark3labs/mcp-go/client"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// haproxyBin is Debian's haproxy (.ci/run installs it). It skips the test
// when haproxy is missing, except under CI=true, where that is a failure.
func haproxyBin(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("haproxy is not installed (%v): apt-get install haproxy", err)
		}
		t.Skipf("haproxy is not installed (%v): apt-get install haproxy", err)
	}
	return bin
}

// replica is one gate of several, with where its probes and metrics answer.
type replica struct {
	*Gate
	ops string // base URL of --metrics-listen
}

// startReplica starts one gate of a set: its own policy file and audit log
// (each replica's log is its own hash chain), probes and metrics on their
// own port, as the Kubernetes manifests run it.
func startReplica(t *testing.T, e *pimEnv, approvals string) replica {
	t.Helper()
	policyFile, _, env := e.authPolicy(t, approvals, "", true)
	g := ServeGate(t, env, "--policy", policyFile, "--metrics-listen", "127.0.0.1:0", "--", Upstream("db")[0], "--name", "db", "--demo")
	m := metricsAt.FindStringSubmatch(g.Stderr.String())
	if m == nil {
		t.Fatalf("no metrics address logged:\n%s", g.Stderr)
	}
	return replica{Gate: g, ops: strings.TrimSuffix(m[1], "/metrics")}
}

// metrics scrapes the replica's /metrics.
func (r replica) metrics(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	code, body := get(t, r.ops+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d", code)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// haproxy is a running HAProxy in front of gate replicas.
type haproxy struct {
	url   string // the MCP endpoint through the balancer
	stats string // its CSV statistics
}

// haproxyConfig balances round robin over the gates, keeps a 2025-11-25
// session on the replica that issued it (the Mcp-Session-Id of the
// initialize response is stored, later requests carrying it are stuck to
// that server), and takes a replica out while its /readyz says no: what
// docs/deploy.md tells operators to run. The listeners are inherited
// (fd@3, fd@4), so no port is guessed.
const haproxyConfig = `global
    maxconn 8192
defaults
    mode http
    timeout connect 5s
    timeout client 10m
    timeout server 10m
    timeout http-request 30s
    timeout check 10s
frontend mcp
    bind fd@3
    default_backend gates
backend gates
    balance roundrobin
    option httpchk
    http-check send meth GET uri /readyz
    stick-table type string len 64 size 10k expire 1h
    stick on req.hdr(Mcp-Session-Id)
    stick store-response res.hdr(Mcp-Session-Id)
%slisten stats
    bind fd@4
    stats enable
    stats uri /stats
`

// startHAProxy runs haproxy in front of replicas and waits until it
// counts every replica up (its /readyz check passed).
func startHAProxy(t *testing.T, replicas ...replica) *haproxy {
	t.Helper()
	bin := haproxyBin(t)
	var servers strings.Builder
	for i, r := range replicas {
		addr := strings.TrimPrefix(strings.TrimSuffix(r.URL, "/mcp"), "http://")
		_, opsPort, err := net.SplitHostPort(strings.TrimPrefix(r.ops, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&servers, "    server gate%d %s check port %s inter 1s fall 10 rise 1\n", i+1, addr, opsPort)
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(haproxyConfig, servers.String())), 0o600); err != nil {
		t.Fatal(err)
	}
	var files []*os.File
	var addrs []string
	for range 2 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		f, err := ln.(*net.TCPListener).File()
		ln.Close() // f is a duplicate that stays open
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close() // haproxy holds its own copy
		files = append(files, f)
		addrs = append(addrs, ln.Addr().String())
	}
	stderr := &SyncBuffer{}
	cmd := exec.Command(bin, "-db", "-f", cfg)
	cmd.ExtraFiles = files
	cmd.Stdout, cmd.Stderr = stderr, stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("haproxy output:\n%s", stderr)
		}
	})
	h := &haproxy{url: "http://" + addrs[0] + "/mcp", stats: "http://" + addrs[1] + "/stats;csv"}
	Eventually(t, "haproxy counts every replica up", func() error {
		select {
		case <-exited:
			t.Fatalf("haproxy exited:\n%s", stderr)
		default:
		}
		up := 0
		for _, row := range h.servers(t) {
			// A server counts as UP before its first check: only a
			// passed check (L7OK) says its /readyz answered 200.
			if strings.HasPrefix(row["status"], "UP") && row["check_status"] == "L7OK" {
				up++
			}
		}
		if up != len(replicas) {
			return fmt.Errorf("%d of %d replicas up", up, len(replicas))
		}
		return nil
	})
	return h
}

// servers are haproxy's statistics rows of the gates' backend servers,
// by column name; they fail the test only if haproxy cannot be read.
func (h *haproxy) servers(t *testing.T) []map[string]string {
	t.Helper()
	resp, err := http.Get(h.stats)
	if err != nil {
		return nil // not listening yet
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil
	}
	rows, err := csv.NewReader(strings.NewReader(strings.TrimPrefix(string(b), "# "))).ReadAll()
	if err != nil || len(rows) == 0 {
		t.Fatalf("haproxy stats: %v\n%s", err, b)
	}
	var out []map[string]string
	for _, row := range rows[1:] {
		m := map[string]string{}
		for i, name := range rows[0] {
			if i < len(row) {
				m[name] = row[i]
			}
		}
		if m["pxname"] == "gates" && m["svname"] != "BACKEND" && m["svname"] != "FRONTEND" {
			out = append(out, m)
		}
	}
	return out
}

var (
	requested = regexp.MustCompile(`msg="pim: activation requested" requestId=(\S+)`)
	adopted   = regexp.MustCompile(`msg="pim: found an existing request" requestId=(\S+)`)
)

// TestReplicasBehindHAProxy: two gate replicas that share nothing but
// Entra, behind HAProxy. 1,000 concurrent calls of one user for one role,
// half in 2025-11-25 sessions (kept on their replica by the session id),
// half without sessions (2026-07-28, balanced call by call), reach both
// replicas; one replica creates the PIM request and the other adopts it,
// so the emulator holds exactly one; all calls are answered once it is
// approved. /readyz and /metrics answer meanwhile with the figures. A
// third replica started afterwards has no cached grant: it reads the
// active assignment and makes no request.
func TestReplicasBehindHAProxy(t *testing.T) {
	const n, clients = 1000, 20
	e := startPIM(t)
	const approvals = "  wait: 10m\n"
	replicas := []replica{startReplica(t, e, approvals), startReplica(t, e, approvals)}
	h := startHAProxy(t, replicas...)

	tok := e.userToken(alice)
	front := &Gate{URL: h.url}
	cs := make([]*client.Client, clients)
	for i := range cs {
		cs[i] = front.userClient(t, tok, Protocols[i%len(Protocols)].Opts...)
	}
	t.Logf("%s %d clients initialized", time.Now().Format("15:04:05.000"), clients)
	var answered atomic.Int64
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i := range n {
		c := cs[i%clients]
		wg.Go(func() {
			defer answered.Add(1)
			res, err := TryCall(t.Context(), c, "delete_database", map[string]any{"name": fmt.Sprint("db", i)})
			if err == nil && res.IsError {
				err = errors.New(Text(t, res))
			}
			if err != nil {
				errs <- err
			}
		})
	}
	// Every call is held at a replica, and each replica has either made
	// the request or found the other's: only then is it approved.
	EventuallyWithin(t, "every call waiting at a replica, each replica on a PIM request", 5*time.Minute, func() error {
		if a := answered.Load(); a > 0 {
			t.Fatalf("%d calls answered before approval: %v", a, <-errs)
		}
		held := 0
		for _, s := range h.servers(t) {
			cur, _ := strconv.Atoi(s["scur"])
			if tot, _ := strconv.Atoi(s["stot"]); tot == 0 {
				return fmt.Errorf("haproxy sent nothing to %s", s["svname"])
			}
			held += cur
		}
		if held < n {
			return fmt.Errorf("%d of %d calls held at the replicas", held, n)
		}
		for i, r := range replicas {
			if log := r.Stderr.String(); !requested.MatchString(log) && !adopted.MatchString(log) {
				return fmt.Errorf("replica %d is not waiting on a request yet", i+1)
			}
		}
		return nil
	})
	t.Logf("%s %d calls held", time.Now().Format("15:04:05.000"), n)
	reqs := e.srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("%d PIM requests for %d calls over %d replicas, want 1: %+v", len(reqs), n, len(replicas), reqs)
	}
	var made, joined []string
	for _, r := range replicas {
		for _, m := range requested.FindAllStringSubmatch(r.Stderr.String(), -1) {
			made = append(made, m[1])
		}
		for _, m := range adopted.FindAllStringSubmatch(r.Stderr.String(), -1) {
			joined = append(joined, m[1])
		}
	}
	if len(made) != 1 || made[0] != reqs[0].ID || len(joined) == 0 || joined[0] != reqs[0].ID {
		t.Fatalf("requested %v, adopted %v; want %s made by one replica and adopted by the other", made, joined, reqs[0].ID)
	}
	// While the calls wait, each replica is ready and counts its sessions.
	for i, r := range replicas {
		code, body := get(t, r.ops+"/readyz")
		var rz readyz
		if err := json.Unmarshal([]byte(body), &rz); err != nil || code != http.StatusOK || !rz.Ready {
			t.Errorf("replica %d /readyz while calls wait: %d %s", i+1, code, body)
		}
		if _, ok := value(r.metrics(t)["mcp_gate_sessions"], nil); !ok {
			t.Errorf("replica %d: no mcp_gate_sessions", i+1)
		}
	}

	if err := e.srv.Approve(reqs[0].ID); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	t.Logf("%s %d calls answered", time.Now().Format("15:04:05.000"), n)
	close(errs)
	for err := range errs {
		t.Errorf("call refused: %v", err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if got := e.srv.CreateCount(); got != 1 {
		t.Fatalf("%d PIM requests created, want 1", got)
	}

	// The figures: every call forwarded by one replica or the other, one
	// activation each (the other's request adopted), and a single 201
	// from Graph between them.
	forwarded, created := 0.0, 0.0
	for i, r := range replicas {
		fams := r.metrics(t)
		f, _ := value(fams["mcp_gate_calls_total"], map[string]string{"decision": "activate", "outcome": "forwarded"})
		if f == 0 {
			t.Errorf("replica %d forwarded no call: haproxy did not spread them", i+1)
		}
		forwarded += f
		if a, _ := value(fams["mcp_gate_activations_total"], map[string]string{"kind": "role", "status": "granted"}); a != 1 {
			t.Errorf("replica %d: activations_total{kind=role,status=granted} = %v, want 1", i+1, a)
		}
		c, _ := value(fams["mcp_gate_graph_requests_total"], map[string]string{"code": "201"})
		created += c
		if w, ok := value(fams["mcp_gate_approval_wait_seconds"], nil); !ok || w != f {
			t.Errorf("replica %d: approval_wait_seconds counts %v calls, want %v", i+1, w, f)
		}
	}
	if forwarded != n || created != 1 {
		t.Errorf("forwarded %v calls with %v Graph 201s, want %d and 1", forwarded, created, n)
	}

	// A replica started now has no grant cached: it finds the role active
	// in Entra and makes no request.
	third := startReplica(t, e, approvals)
	if res := Call(t, third.userClient(t, tok), "delete_database", map[string]any{"name": "third"}); res.IsError {
		t.Fatalf("the third replica's call: %s", Text(t, res))
	}
	if got := e.srv.CreateCount(); got != 1 || requested.MatchString(third.Stderr.String()) {
		t.Fatalf("%d PIM requests after the third replica's call, want still 1", got)
	}
}
