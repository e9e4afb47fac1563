package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"text/template"
	"time"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/client/transport"
	"github.com/mark3labs/mcp-go/mcp"
)

// alice is the demo user: the emulator's scenario makes her eligible.
const alice = "5f0c1a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"

// upstreamName is the name the demo upstream gives itself.
const upstreamName = "demo-db"

// demo is one run of the demo.
type demo struct {
	bin, dir  string
	keep      bool // leave dir in place after the run
	hold      bool // keep the processes up after the timeline until ctx ends
	out, logs io.Writer
	start     time.Time

	mu    sync.Mutex
	heard int // progress notifications during the call in flight
}

// say prints one timeline line, stamped with the time since the start.
func (d *demo) say(format string, args ...any) {
	d.mu.Lock()
	defer d.mu.Unlock()
	fmt.Fprintf(d.out, "[%5.1fs] %s\n", time.Since(d.start).Seconds(), fmt.Sprintf(format, args...))
}

func (d *demo) run(ctx context.Context) error {
	d.start = time.Now()
	fmt.Fprintln(d.out, "mcp-gate demo: no Azure tenant needed; a local PIM emulator stands in for Microsoft Graph and Azure Resource Manager.")
	fate := "deleted at the end; run with -keep to keep them"
	if d.keep {
		fate = "kept after the run"
	}
	fmt.Fprintf(d.out, "Its files (policy demo-policy.yaml, audit log audit.jsonl, the emulator's scenario, CA and token) are in %s, %s.\n", d.dir, fate)

	graphURL, caFile, stopEmulator, err := d.startEmulator(ctx)
	if err != nil {
		return err
	}
	defer stopEmulator()
	armURL := strings.TrimSuffix(graphURL, "/v1.0")
	d.say("PIM emulator serving Graph at %s and Azure Resource Manager at %s; alice is eligible for 'Database Administrator' (approver approves after 7s), 'Treasury' (approver denies), "+
		"membership of the PIM group 'Prod Deployers' (approver approves after 4s) and the Azure role 'Contributor' in one subscription (approver approves after 3s)", graphURL, armURL)

	tokenFile, armTokenFile := filepath.Join(d.dir, "graph-token"), filepath.Join(d.dir, "arm-token")
	for file, resource := range map[string]string{tokenFile: "graph", armTokenFile: "arm"} {
		token, err := mintToken(ctx, graphURL, caFile, alice, resource)
		if err != nil {
			return fmt.Errorf("mint a %s token for alice: %w", resource, err)
		}
		if err := os.WriteFile(file, []byte(token), 0o600); err != nil {
			return err
		}
	}
	policyFile, auditFile := filepath.Join(d.dir, "demo-policy.yaml"), filepath.Join(d.dir, "audit.jsonl")
	if err := writePolicy(policyFile, policyData{GraphURL: graphURL, ARMURL: armURL, CAFile: caFile, TokenFile: tokenFile, ARMTokenFile: armTokenFile, AuditPath: auditFile}); err != nil {
		return err
	}

	cli, err := d.startGate(ctx, policyFile)
	if err != nil {
		return err
	}
	closed := false
	defer func() {
		if !closed {
			cli.Close()
		}
	}()
	if err := d.steps(ctx, cli); err != nil {
		return err
	}
	if d.hold {
		// The interrupt reaches mcp-gate and the emulator too: the audit
		// log is not verified after a hold.
		d.say("every step behaved as described; holding: the emulator, mcp-gate and its approvals page stay up; press Ctrl-C to end the demo")
		<-ctx.Done()
		fmt.Fprintln(d.out, "demo passed; ended on interrupt after the hold.")
		return nil
	}
	closed = true
	if err := cli.Close(); err != nil {
		return fmt.Errorf("stop mcp-gate: %w", err)
	}
	out, err := exec.CommandContext(ctx, filepath.Join(d.bin, "mcp-gate"), "audit", "verify", auditFile).CombinedOutput()
	if err != nil {
		return fmt.Errorf("audit log does not verify: %s", out)
	}
	// Every decision is on record: nine calls forwarded (five steps and
	// four counts from the upstream), each recorded before it left the gate
	// and again with its outcome, and two refusals, recorded once.
	if want := "ok: 20 records, chain intact, checkpoint matches"; !strings.HasPrefix(string(out), want) {
		return fmt.Errorf("audit log: %s, want %s", strings.TrimSpace(string(out)), want)
	}
	shown := filepath.Base(auditFile)
	if d.keep {
		shown = auditFile
	}
	d.say("audit log %s: %s", shown, strings.TrimSpace(string(out)))
	fmt.Fprintln(d.out, "demo passed: every step behaved as described.")
	return nil
}

// steps drives the gate through the timeline and checks each answer.
func (d *demo) steps(ctx context.Context, cli *client.Client) error {
	tools, err := cli.ListTools(ctx, mcp.ListToolsRequest{})
	if err != nil {
		return fmt.Errorf("tools/list: %w", err)
	}
	var names []string
	for _, t := range tools.Tools {
		names = append(names, t.Name)
		if t.Name == "delete_database" {
			d.say("delete_database's description as the model sees it: %q", t.Description)
		}
	}
	d.say("tools the model sees: %s (denied tools such as crash are hidden)", strings.Join(names, ", "))
	if slices.Contains(names, "crash") || !slices.Contains(names, "delete_database") {
		return errors.New("tools/list does not follow the policy")
	}

	type check struct {
		title, tool string
		args        map[string]any
		wantError   bool
		want        string // a piece of the answer
		progress    bool   // progress lines expected
	}
	for i, c := range []check{
		{"an allowed call", "read_table", map[string]any{"table": "customers"}, false, "3 rows from customers", false},
		{"a call that needs PIM role 'Database Administrator'", "delete_database", map[string]any{"name": "staging"}, false, "database staging deleted", true},
		{"the same call again: the grant is cached", "delete_database", map[string]any{"name": "scratch"}, false, "database scratch deleted", false},
		{"a call that needs membership of PIM group 'Prod Deployers' (PIM for Groups)", "deploy", map[string]any{"repo": "web"}, false, `deployed "web"`, true},
		{"a call that needs Azure role 'Contributor' on resource group rg-prod (eligible at the subscription; activated through ARM)", "restart_app", map[string]any{"app": "web"}, false, "app web restarted", true},
		{"a call the policy denies", "crash", map[string]any{}, true, "denied by demo-policy.yaml:", false},
		{"a call whose PIM request the approver denies", "send_payment", map[string]any{"to": "ACME Ltd", "amount": 1200}, true, "denied the activation of role Treasury", true},
	} {
		argsJSON, _ := json.Marshal(c.args)
		d.say("%d. %s: %s %s", i+1, c.title, c.tool, argsJSON)
		d.mu.Lock()
		d.heard = 0
		d.mu.Unlock()
		t0 := time.Now()
		req := mcp.CallToolRequest{}
		req.Params.Name, req.Params.Arguments = c.tool, c.args
		req.Params.Meta = &mcp.Meta{ProgressToken: mcp.ProgressToken(fmt.Sprintf("step-%d", i+1))}
		res, err := cli.CallTool(ctx, req)
		if err != nil {
			return fmt.Errorf("step %d: %w", i+1, err)
		}
		text := resultText(res)
		took := readable(time.Since(t0))
		verdict := "result"
		if res.IsError {
			verdict = "error" // the gate's text says why: "denied by …", "refused: …"
		}
		d.say("   %s after %v: %s", verdict, took, text)
		d.mu.Lock()
		heard := d.heard
		d.mu.Unlock()
		switch {
		case res.IsError != c.wantError || !strings.Contains(text, c.want):
			return fmt.Errorf("step %d: answer %q (isError %v), want isError %v with %q", i+1, text, res.IsError, c.wantError, c.want)
		case c.progress && heard == 0:
			return fmt.Errorf("step %d: no progress while waiting for approval", i+1)
		case !c.progress && heard > 0:
			return fmt.Errorf("step %d: progress on a call that should not wait", i+1)
		}
	}

	// The upstream's own count proves what reached it.
	for tool, want := range map[string]string{"delete_database": "2", "deploy": "1", "restart_app": "1", "send_payment": "0"} {
		res, err := cli.CallTool(ctx, mcp.CallToolRequest{Params: mcp.CallToolParams{Name: "calls", Arguments: map[string]any{"tool": tool}}})
		if err != nil {
			return err
		}
		if got := resultText(res); got != want {
			return fmt.Errorf("the upstream ran %s %s times, want %s", tool, got, want)
		}
	}
	d.say("the upstream ran delete_database twice, deploy and restart_app once and send_payment never: refused calls were not forwarded")
	return nil
}

// startEmulator runs bin/pim-emulator on the demo scenario and returns its
// Graph URL and CA file.
func (d *demo) startEmulator(ctx context.Context) (graphURL, caFile string, stop func(), err error) {
	scenario := filepath.Join(d.dir, "scenario.yaml")
	if err := os.WriteFile(scenario, scenarioYAML, 0o600); err != nil {
		return "", "", nil, err
	}
	caFile, urlFile := filepath.Join(d.dir, "emulator-ca.pem"), filepath.Join(d.dir, "graph-url")
	cmd := exec.Command(filepath.Join(d.bin, "pim-emulator"), "--scenario", scenario, "--ca-file", caFile, "--url-file", urlFile)
	cmd.Stdout, cmd.Stderr = d.logs, d.logs
	if err := cmd.Start(); err != nil {
		return "", "", nil, fmt.Errorf("start the PIM emulator (run `make build` first): %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}
	deadline := time.After(15 * time.Second)
	for {
		if b, err := os.ReadFile(urlFile); err == nil && bytes.HasSuffix(b, []byte("\n")) {
			return strings.TrimSpace(string(b)), caFile, stop, nil
		}
		select {
		case err := <-exited:
			return "", "", nil, fmt.Errorf("the PIM emulator exited: %v", err)
		case <-deadline:
			stop()
			return "", "", nil, errors.New("the PIM emulator did not report its URL")
		case <-ctx.Done():
			stop()
			return "", "", nil, ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// mintToken asks the emulator's admin surface for a token for oid, for
// resource graph or arm.
func mintToken(ctx context.Context, graphURL, caFile, oid, resource string) (string, error) {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return "", err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return "", errors.New("the emulator's CA file holds no certificate")
	}
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	root := strings.TrimSuffix(graphURL, "/v1.0")
	body, _ := json.Marshal(map[string]any{"oid": oid, "resource": resource})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, root+"/_emulator/token", bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var tok struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&tok); err != nil || tok.AccessToken == "" {
		return "", fmt.Errorf("token endpoint answered %s: %v", resp.Status, err)
	}
	return tok.AccessToken, nil
}

type policyData struct{ GraphURL, ARMURL, CAFile, TokenFile, ARMTokenFile, AuditPath string }

func writePolicy(path string, data policyData) error {
	t, err := template.New("policy").Parse(policyTemplate)
	if err != nil {
		return err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o600)
}

// startGate launches mcp-gate on stdio in front of the demo upstream and
// initializes an MCP session with it.
func (d *demo) startGate(ctx context.Context, policyFile string) (*client.Client, error) {
	args := []string{"--policy", policyFile, "--", filepath.Join(d.bin, "test-upstream"), "--demo", "--name", upstreamName}
	page := &pageWatch{url: make(chan string, 1)}
	tr := transport.NewStdioWithOptions(filepath.Join(d.bin, "mcp-gate"), os.Environ(), args, transport.WithCommandStderrWriter(io.MultiWriter(d.logs, page)))
	cli := client.NewClient(tr)
	if err := cli.Start(ctx); err != nil {
		return nil, fmt.Errorf("start mcp-gate: %w", err)
	}
	cli.OnNotification(func(n mcp.JSONRPCNotification) {
		if n.Method != string(mcp.MethodNotificationProgress) {
			return
		}
		msg, _ := n.Params.AdditionalFields["message"].(string)
		d.mu.Lock()
		d.heard++
		d.mu.Unlock()
		d.say("   progress: %s", msg)
	})
	init := mcp.InitializeRequest{}
	init.Params.ProtocolVersion = mcp.LATEST_PROTOCOL_VERSION
	init.Params.ClientInfo = mcp.Implementation{Name: "mcp-gate-demo", Version: "1"}
	res, err := cli.Initialize(ctx, init)
	if err != nil {
		cli.Close()
		return nil, fmt.Errorf("initialize mcp-gate: %w", err)
	}
	d.say("mcp-gate started with policy %s in front of the upstream %s (test-upstream --demo); to the client it is %s %s, protocol %s",
		filepath.Base(policyFile), upstreamName, res.ServerInfo.Name, res.ServerInfo.Version, res.ProtocolVersion)
	// mcp-gate logs the page's address before it serves MCP; its stderr
	// may reach us after its answer to initialize.
	select {
	case url := <-page.url:
		d.say("approvals page (live while the demo runs; --hold keeps it up): %s", url)
	case <-time.After(10 * time.Second):
		cli.Close()
		return nil, errors.New("mcp-gate did not log where it serves the approvals page")
	}
	return cli, nil
}

// pageLine is mcp-gate's log line that says where the approvals page is.
var pageLine = regexp.MustCompile(`msg="serving the approvals page" url=(\S+)`)

// pageWatch reads mcp-gate's log for the approvals page's address.
type pageWatch struct {
	mu   sync.Mutex
	line []byte
	url  chan string
}

func (p *pageWatch) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.line = append(p.line, b...)
	for {
		i := bytes.IndexByte(p.line, '\n')
		if i < 0 {
			break
		}
		if m := pageLine.FindSubmatch(p.line[:i]); m != nil {
			select {
			case p.url <- string(m[1]):
			default:
			}
		}
		p.line = p.line[i+1:]
	}
	if len(p.line) > 64<<10 {
		p.line = p.line[:0] // no log line of interest is this long
	}
	return len(b), nil
}

// readable rounds d to what a reader of the timeline cares about.
func readable(d time.Duration) time.Duration {
	if d >= time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(10 * time.Microsecond)
}

func resultText(res *mcp.CallToolResult) string {
	var parts []string
	for _, c := range res.Content {
		if t, ok := c.(mcp.TextContent); ok {
			parts = append(parts, t.Text)
		}
	}
	return strings.Join(parts, " ")
}
