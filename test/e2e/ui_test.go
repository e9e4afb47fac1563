package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"
	"github.com/mark3labs/mcp-go/mcp"

	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// uiListen turns the approvals page on, on a free loopback port.
const uiListen = "ui:\n  listen: \"127.0.0.1:0\"\n"

var pageURL = regexp.MustCompile(`msg="serving the approvals page" url=(\S+)`)

// withUI appends extra (a ui: section, say) to the policy file.
func withUI(t *testing.T, policyFile, extra string) {
	t.Helper()
	f, err := os.OpenFile(policyFile, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(extra); err != nil {
		t.Fatal(err)
	}
}

// uiURL waits for the gate's log line that says where its page is.
func uiURL(t *testing.T, stderr *SyncBuffer) string {
	t.Helper()
	var url string
	Eventually(t, "the log line naming the approvals page", func() error {
		m := pageURL.FindStringSubmatch(stderr.String())
		if m == nil {
			return errors.New("not logged yet")
		}
		url = m[1]
		return nil
	})
	return url
}

// browser starts headless Chromium (Debian's chromium, or $CHROMIUM) with
// a fresh profile. Without it the test is skipped, except under CI=true.
func browser(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		path = "/usr/bin/chromium"
	}
	if _, err := exec.LookPath(path); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("headless Chromium is not installed (%v): apt-get install chromium", err)
		}
		t.Skipf("headless Chromium is not installed (%v): apt-get install chromium", err)
	}
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(path),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(1200, 760),
	)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx); err != nil { // starts the browser
		t.Fatalf("start Chromium: %v", err)
	}
	return ctx
}

// artifacts is where the test leaves its screenshots: $ARTIFACTS_DIR, else
// a directory under the system's temp dir that outlives the test.
func artifacts(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "mcp-gate-artifacts")
	}
	dir = filepath.Join(dir, t.Name())
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// see waits, on the page's own updates (a DOM mutation; never a reload),
// until the element selector names exists, saves a screenshot as shot,
// and returns the element's text.
func see(t *testing.T, ctx context.Context, what, selector, shot string) string {
	t.Helper()
	q, _ := json.Marshal(selector)
	text, err := chromedp.Run(ctx, chromedp.Poll[string](fmt.Sprintf("(document.querySelector(%s) || {}).innerText", q),
		chromedp.WithPollingMutation(), chromedp.WithPollingTimeout(30*time.Second)))
	if err != nil {
		html, _ := chromedp.Run(ctx, chromedp.Evaluate[string]("document.querySelector('main').outerHTML"))
		t.Fatalf("the page never showed %s (%s): %v\n%s", what, selector, err, html)
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot of %s: %s", what, shot)
	return text
}

// TestApprovalsPageInBrowser: the page, open in headless Chromium on a
// stdio gate, shows a gated call waiting with its PIM request id, then
// the grant once an approver approves, then the decision, all live.
func TestApprovalsPageInBrowser(t *testing.T) {
	ctx := browser(t)
	e := startPIM(t)
	// The call waits for the approver however slow the machine: no receipt.
	policyFile, _ := e.gatedPolicy(t, gateOpts{principal: alice, approvals: "  wait: 10m\n"})
	withUI(t, policyFile, uiListen)
	c, stderr := StdioGate(t, nil, append([]string{"--policy", policyFile, "--"}, append(Upstream("db"), "--demo")...))
	url := uiURL(t, stderr)
	dir := artifacts(t)

	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	// The event stream has connected once the script says so.
	see(t, ctx, "the live page", `#live[data-state="live"]`, filepath.Join(dir, "0-empty.png"))

	done := make(chan *mcp.CallToolResult, 1)
	go func() {
		res, err := TryCall(context.Background(), c, "delete_database", map[string]any{"name": "staging"})
		if err != nil {
			t.Error(err)
		}
		done <- res
	}()
	req := e.pendingRequest(t, alice)
	text := see(t, ctx, "the waiting call with its request id", fmt.Sprintf(`#waiting-rows tr.waiting[data-request=%q]`, req.ID), filepath.Join(dir, "1-waiting.png"))
	for _, want := range []string{"delete_database", dbaRole, alice, req.ID, "PendingApproval", "Approve requests"} {
		if !strings.Contains(text, want) {
			t.Errorf("the waiting row %q lacks %q", text, want)
		}
	}

	if err := e.srv.Approve(req.ID); err != nil {
		t.Fatal(err)
	}
	text = see(t, ctx, "the grant", fmt.Sprintf(`#granted-rows tr.granted[data-request=%q]`, req.ID), filepath.Join(dir, "2-granted.png"))
	if !strings.Contains(text, dbaRole) || !strings.Contains(text, alice) {
		t.Errorf("the granted row %q lacks the role or the principal", text)
	}
	if res := Receive(t, "the call's answer", done); res == nil || res.IsError {
		t.Fatalf("the approved call was answered %+v", res)
	}
	text = see(t, ctx, "the decision", `#decided-rows tr.decided.outcome-forwarded`, filepath.Join(dir, "3-decided.png"))
	if !strings.Contains(text, "delete_database") || !strings.Contains(text, "policies.yaml:") {
		t.Errorf("the decided row %q lacks the tool or its rule", text)
	}
	waiting, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll("#waiting-rows tr.waiting").length`))
	if err != nil {
		t.Fatal(err)
	}
	if waiting != 0 {
		t.Errorf("%d rows still waiting after the grant", waiting)
	}

	// Readable in a dark scheme: the page follows prefers-color-scheme.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	bg, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.body).backgroundColor`))
	if err != nil || bg != "rgb(15, 18, 22)" {
		t.Errorf("body background in the dark scheme = %q (%v), want the dark one", bg, err)
	}
	see(t, ctx, "the page in the dark scheme", `#decided-rows tr.decided`, filepath.Join(dir, "4-dark.png"))

	// Without JavaScript the page is a complete snapshot, rendered by the gate.
	if _, err := chromedp.Call(ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.Navigate(url)); err != nil {
		t.Fatal(err)
	}
	snapshot, err := chromedp.Run(ctx, chromedp.OuterHTML("main"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`tr class="granted" data-request="` + req.ID + `"`, `outcome-forwarded`, "delete_database"} {
		if !strings.Contains(snapshot, want) {
			t.Errorf("the page without JavaScript lacks %q:\n%s", want, snapshot)
		}
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "5-no-javascript.png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestApprovalsPageRefusesForeignOriginAndHost: the gate's page answers
// neither another site's page nor a request under a rebound name.
func TestApprovalsPageRefusesForeignOriginAndHost(t *testing.T) {
	policyFile := AllowAllPolicy(t)
	withUI(t, policyFile, uiListen)
	_, stderr := StdioGate(t, nil, []string{"--policy", policyFile, "--", UpstreamBin, "--name", "db"})
	url := uiURL(t, stderr)
	for _, tt := range []struct {
		name, host, origin string
		want               int
	}{
		{"own page", "", "", http.StatusOK},
		{"foreign origin", "", "https://evil.example", http.StatusForbidden},
		{"rebound host", "evil.example", "", http.StatusForbidden},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, url+"api/decided", nil)
			if tt.host != "" {
				req.Host = tt.host
			}
			if tt.origin != "" {
				req.Header.Set("Origin", tt.origin)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
}

// TestApprovalsPageShowsOwnItems: with serve.auth, each user's token
// shows them their own decisions only; the admin role shows everyone's.
func TestApprovalsPageShowsOwnItems(t *testing.T) {
	e := startPIM(t)
	g, _ := authGateWith(t, e, "  wait: 0s\n", uiListen+"  adminRole: mcp-gate.admin\n", true)
	url := uiURL(t, g.Stderr)
	// carol is eligible for nothing: refused; alice's request waits: a receipt.
	for _, who := range []string{carol, alice} {
		res := Call(t, g.userClient(t, e.userToken(who)), "delete_database", map[string]any{"name": "x"})
		if !res.IsError {
			t.Fatalf("%s's call went through: %s", who, Text(t, res))
		}
	}
	principals := func(token string) map[string]int {
		seen := map[string]int{}
		for _, d := range decidedAs(t, url, token) {
			p, _ := d["principal"].(string)
			seen[p]++
		}
		return seen
	}
	for _, tt := range []struct {
		name   string
		token  string
		see    []string
		notSee []string
	}{
		{"alice", e.userToken(alice), []string{alice}, []string{carol}},
		{"carol", e.userToken(carol), []string{carol}, []string{alice}},
		{"bob, who made no call", e.userToken(bob), nil, []string{alice, carol}},
		{"an admin", e.userToken(bob, pimtest.UserClaim("roles", []string{"mcp-gate.admin"})), []string{alice, carol}, nil},
	} {
		t.Run(tt.name, func(t *testing.T) {
			seen := principals(tt.token)
			for _, p := range tt.see {
				if seen[p] == 0 {
					t.Errorf("does not see %s's decision: %v", p, seen)
				}
			}
			for _, p := range tt.notSee {
				if seen[p] > 0 {
					t.Errorf("sees %s's decision: %v", p, seen)
				}
			}
		})
	}
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("the page without a token: status %d, want 401", resp.StatusCode)
	}
}

// decidedAs reads the page's decisions with token.
func decidedAs(t *testing.T, url, token string) []map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url+"api/decided", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	var out []map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	return out
}
