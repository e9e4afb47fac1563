package pim_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/clock"
	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

const (
	alice = "0b6b1c8e-7a0f-4a43-9a5e-3f3c2d1e0a11"
	bob   = "5d2f9c41-33aa-4e6b-8f0d-0c9e8b7a6f22"

	helpdeskID = "729827e3-9c14-49f7-bb1b-9608f156bbb8" // no approval
	privRoleID = "e8611ab8-c189-46e8-94e1-60213ab1f814" // needs approval
	obrienID   = "11111111-2222-4333-8444-555555555555" // a name with apostrophes
	justID     = "21111111-2222-4333-8444-555555555555"
	ticketID   = "31111111-2222-4333-8444-555555555555"
	mfaID      = "41111111-2222-4333-8444-555555555555"
	shortID    = "51111111-2222-4333-8444-555555555555"
	denyID     = "61111111-2222-4333-8444-555555555555"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func scenario() pimtest.Scenario {
	return pimtest.Scenario{
		Users: []pimtest.User{{ID: alice, Name: "Alice"}, {ID: bob, Name: "Bob"}},
		Roles: []pimtest.Role{
			{ID: helpdeskID, DisplayName: "Helpdesk Administrator"},
			{ID: privRoleID, DisplayName: "Privileged Role Administrator", RequiresApproval: true},
			{ID: obrienID, DisplayName: "O'Brien's Role"},
			{ID: justID, DisplayName: "Justified Role", RequiresJustification: true},
			{ID: ticketID, DisplayName: "Ticketed Role", RequiresTicket: true},
			{ID: mfaID, DisplayName: "MFA Role", RequiresMFA: true},
			{ID: shortID, DisplayName: "Short Role", MaxDuration: time.Hour},
			{ID: denyID, DisplayName: "Denied Role", RequiresApproval: true,
				Approver: &pimtest.Approver{Mode: pimtest.DenyAuto, After: 3 * time.Second}},
		},
		Eligibilities: []pimtest.Eligibility{
			{Principal: alice, Role: helpdeskID}, {Principal: alice, Role: privRoleID}, {Principal: alice, Role: obrienID},
			{Principal: alice, Role: justID}, {Principal: alice, Role: ticketID}, {Principal: alice, Role: mfaID},
			{Principal: alice, Role: shortID}, {Principal: alice, Role: denyID},
		},
	}
}

// recClock is the fake clock, remembering every wait asked of it.
type recClock struct {
	*clock.Fake
	mu    sync.Mutex
	waits []time.Duration
}

func (r *recClock) After(d time.Duration) <-chan time.Time {
	r.mu.Lock()
	r.waits = append(r.waits, d)
	r.mu.Unlock()
	return r.Fake.After(d)
}

func (r *recClock) Waits() []time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]time.Duration(nil), r.waits...)
}

// emuCred mints an emulator token per request (ExpiresOn now makes the
// bearer policy ask again each time), so tokens follow the fake clock.
type emuCred struct {
	srv  *pimtest.Server
	oid  string
	opts []pimtest.TokenOption
}

func (e emuCred) GetToken(context.Context, policy.TokenRequestOptions) (azcore.AccessToken, error) {
	return azcore.AccessToken{Token: e.srv.Token(e.oid, e.opts...), ExpiresOn: time.Now()}, nil
}

type env struct {
	srv    *pimtest.Server
	clk    *recClock
	caFile string
}

func start(t *testing.T, sc pimtest.Scenario, opts ...pimtest.Option) *env {
	t.Helper()
	clk := &recClock{Fake: clock.NewFake(t0)}
	srv, err := pimtest.NewServer(sc, append([]pimtest.Option{pimtest.WithClock(clk.Fake)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	e := &env{srv: srv, clk: clk}
	if pem := srv.CACertPEM(); pem != nil {
		e.caFile = filepath.Join(t.TempDir(), "ca.pem")
		if err := os.WriteFile(e.caFile, pem, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// client builds a client for oid against the emulator. Jitter is fixed at
// its midpoint so backoff waits are exact: 1s, 2s, 4s, 8s, 8s...
func (e *env) client(t *testing.T, oid string, mod ...func(*pim.Config)) *pim.Client {
	t.Helper()
	cfg := pim.Config{
		GraphURL:       e.srv.URL(),
		CAFile:         e.caFile,
		Credential:     emuCred{srv: e.srv, oid: oid},
		PollInterval:   time.Second,
		PollMaxBackoff: 8 * time.Second,
		Clock:          e.clk,
		Jitter:         func() float64 { return 0.5 },
	}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := pim.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// run calls fn in a goroutine and moves the fake clock on whenever fn
// waits, in 500ms steps so every wait ends exactly when due.
func (e *env) run(fn func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn()
	}()
	for e.clk.BlockUntil(1, done) {
		e.clk.Advance(500 * time.Millisecond)
	}
	<-done
}

func (e *env) activate(c *pim.Client, ctx context.Context, req pim.Request, onStatus func(pim.Status)) (g pim.Grant, err error) {
	e.run(func() { g, err = c.Activate(ctx, req, onStatus) })
	return g, err
}

func req(role string) pim.Request {
	return pim.Request{Principal: alice, Target: mgpolicy.Target{Role: role}, Duration: 15 * time.Minute, Justification: "test"}
}

func TestResolveRole(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice)
	ctx := context.Background()
	tests := []struct {
		role, want string
		hits       int // Graph requests this resolution costs
		err        error
	}{
		{"Helpdesk Administrator", helpdeskID, 1, nil},
		{"Helpdesk Administrator", helpdeskID, 0, nil}, // cached
		{"O'Brien's Role", obrienID, 1, nil},
		{privRoleID, privRoleID, 0, nil}, // a GUID is used as is
		{"No Such Role", "", 1, pim.ErrRoleNotFound},
		{"Robert'); DROP", "", 1, pim.ErrRoleNotFound},
	}
	for _, tt := range tests {
		before := e.srv.HitCount()
		got, err := c.ResolveRole(ctx, tt.role)
		if !errors.Is(err, tt.err) || got != tt.want {
			t.Errorf("ResolveRole(%q) = %q, %v; want %q, %v", tt.role, got, err, tt.want, tt.err)
		}
		if hits := e.srv.HitCount() - before; hits != tt.hits {
			t.Errorf("ResolveRole(%q) made %d Graph requests, want %d", tt.role, hits, tt.hits)
		}
	}
}

func TestActivateWithoutApproval(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice)
	r := req("O'Brien's Role")
	r.TicketNumber, r.TicketSystem = "INC-1", "ServiceNow"
	g, err := e.activate(c, context.Background(), r, nil)
	if err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("emulator has %d requests, want 1", len(reqs))
	}
	got := reqs[0]
	if got.Principal != alice || got.RoleDefinitionID != obrienID || got.Duration != 15*time.Minute ||
		got.Justification != "test" || got.TicketNumber != "INC-1" || got.TicketSystem != "ServiceNow" {
		t.Errorf("request as the emulator saw it = %+v", got)
	}
	want := pim.Grant{RoleDefinitionID: obrienID, RequestID: got.ID, Start: t0, End: t0.Add(15 * time.Minute)}
	if !grantEqual(g, want) {
		t.Errorf("grant = %+v, want %+v", g, want)
	}
}

func grantEqual(a, b pim.Grant) bool {
	return a.RoleDefinitionID == b.RoleDefinitionID && a.RequestID == b.RequestID && a.Start.Equal(b.Start) &&
		a.End.Equal(b.End) && a.AlreadyActive == b.AlreadyActive
}

func TestActivateNotEligible(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, bob)
	r := req("Helpdesk Administrator")
	r.Principal = bob
	_, err := e.activate(c, context.Background(), r, nil)
	if !errors.Is(err, pim.ErrNotEligible) {
		t.Fatalf("err = %v, want ErrNotEligible", err)
	}
	if !strings.Contains(pim.UserMessage(err), "you are not eligible for PIM role 'Helpdesk Administrator'") {
		t.Errorf("UserMessage = %q", pim.UserMessage(err))
	}
	if n := e.srv.CreateCount(); n != 0 {
		t.Errorf("%d requests created, want 0", n)
	}
}

func TestActivateAlreadyActive(t *testing.T) {
	sc := scenario()
	sc.Active = []pimtest.Assignment{{Principal: alice, Role: helpdeskID, Duration: 3 * time.Hour}}
	e := start(t, sc)
	g, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
	if err != nil {
		t.Fatal(err)
	}
	// The assignment's own end, not now + the requested 15 minutes.
	want := pim.Grant{RoleDefinitionID: helpdeskID, Start: t0, End: t0.Add(3 * time.Hour), AlreadyActive: true}
	if !grantEqual(g, want) {
		t.Errorf("grant = %+v, want %+v", g, want)
	}
	if n := e.srv.CreateCount(); n != 0 {
		t.Errorf("%d requests created, want 0", n)
	}
}

func TestActivateAfterExpiry(t *testing.T) {
	sc := scenario()
	sc.Active = []pimtest.Assignment{{Principal: alice, Role: helpdeskID, Duration: time.Hour}}
	e := start(t, sc)
	e.clk.Advance(2 * time.Hour) // the assignment has ended
	g, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
	if err != nil {
		t.Fatal(err)
	}
	if g.AlreadyActive || e.srv.CreateCount() != 1 {
		t.Fatalf("expired assignment treated as live: grant %+v, %d requests created", g, e.srv.CreateCount())
	}
	if now := t0.Add(2 * time.Hour); !g.End.Equal(now.Add(15 * time.Minute)) {
		t.Errorf("End = %v, want %v", g.End, now.Add(15*time.Minute))
	}
}

func TestActivateApprovalGranted(t *testing.T) {
	e := start(t, scenario())
	var (
		statuses   []pim.Status
		approvedAt time.Time
	)
	onStatus := func(s pim.Status) {
		statuses = append(statuses, s)
		if len(statuses) == 4 { // approve after three polls
			approvedAt = e.clk.Now()
			if err := e.srv.Approve(s.RequestID); err != nil {
				t.Errorf("Approve: %v", err)
			}
		}
	}
	g, err := e.activate(e.client(t, alice), context.Background(), req("Privileged Role Administrator"), onStatus)
	if err != nil {
		t.Fatal(err)
	}
	id := e.srv.Requests()[0].ID
	// Approval came 7s after the request; the emulator starts the
	// assignment then, so the grant ends 15m after approval, which only a
	// read-back (not start + duration) gets right.
	want := pim.Grant{RoleDefinitionID: privRoleID, RequestID: id, Start: approvedAt, End: approvedAt.Add(15 * time.Minute)}
	if !grantEqual(g, want) || !approvedAt.Equal(t0.Add(7*time.Second)) {
		t.Errorf("grant = %+v (approved at %v), want %+v", g, approvedAt, want)
	}
	wantElapsed := []time.Duration{0, time.Second, 3 * time.Second, 7 * time.Second, 15 * time.Second}
	if len(statuses) != len(wantElapsed) {
		t.Fatalf("statuses = %+v", statuses)
	}
	for i, s := range statuses {
		wantStatus := "PendingApproval"
		if i == len(statuses)-1 {
			wantStatus = "Provisioned"
		}
		if s.RequestID != id || s.Status != wantStatus || s.Elapsed != wantElapsed[i] {
			t.Errorf("status %d = %+v, want %s after %v", i, s, wantStatus, wantElapsed[i])
		}
	}
	if n := e.srv.CreateCount(); n != 1 {
		t.Errorf("%d requests created, want 1", n)
	}
}

func TestPollBackoffDoublesToMax(t *testing.T) {
	e := start(t, scenario())
	polls := 0
	onStatus := func(s pim.Status) {
		if polls++; polls == 7 {
			if err := e.srv.Approve(s.RequestID); err != nil {
				t.Error(err)
			}
		}
	}
	if _, err := e.activate(e.client(t, alice), context.Background(), req(privRoleID), onStatus); err != nil {
		t.Fatal(err)
	}
	want := []time.Duration{1, 2, 4, 8, 8, 8, 8}
	got := e.clk.Waits()
	if len(got) != len(want) {
		t.Fatalf("waits = %v, want %v seconds", got, want)
	}
	for i := range want {
		if got[i] != want[i]*time.Second {
			t.Fatalf("waits = %v, want %v seconds", got, want)
		}
	}
}

func TestJitterStaysWithinTwentyPercent(t *testing.T) {
	for _, j := range []struct {
		r    float64
		want time.Duration
	}{{0, 800 * time.Millisecond}, {1, 1200 * time.Millisecond}} {
		e := start(t, scenario())
		polls := 0
		onStatus := func(s pim.Status) {
			if polls++; polls == 2 {
				_ = e.srv.Approve(s.RequestID)
			}
		}
		c := e.client(t, alice, func(c *pim.Config) { c.Jitter = func() float64 { return j.r } })
		if _, err := e.activate(c, context.Background(), req(privRoleID), onStatus); err != nil {
			t.Fatal(err)
		}
		if got := e.clk.Waits(); len(got) != 2 || got[0].Round(time.Millisecond) != j.want || got[1].Round(time.Millisecond) != 2*j.want {
			t.Errorf("jitter %v: waits = %v, want [%v %v]", j.r, got, j.want, 2*j.want)
		}
	}
}

func TestActivateDenied(t *testing.T) {
	e := start(t, scenario())
	_, err := e.activate(e.client(t, alice), context.Background(), req("Denied Role"), nil)
	var re *pim.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, want *RefusedError", err)
	}
	if id := e.srv.Requests()[0].ID; re.Status != "Denied" || re.RequestID != id {
		t.Errorf("refusal = %+v, want Denied for %s", re, id)
	}
	if m := pim.UserMessage(err); !strings.Contains(m, "denied") || !strings.Contains(m, re.RequestID) {
		t.Errorf("UserMessage = %q", m)
	}
}

func TestActivateRefusedAfterCancelInPortal(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice)
	onStatus := func(s pim.Status) {
		if s.Elapsed == 0 { // someone cancels it elsewhere, e.g. in the portal
			if err := c.Cancel(context.Background(), s.RequestID); err != nil {
				t.Error(err)
			}
		}
	}
	_, err := e.activate(c, context.Background(), req(privRoleID), onStatus)
	var re *pim.RefusedError
	if !errors.As(err, &re) || re.Status != "Canceled" {
		t.Fatalf("err = %v, want a Canceled refusal", err)
	}
}

func TestCancelledContextCancelsTheRequest(t *testing.T) {
	e := start(t, scenario())
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	onStatus := func(s pim.Status) {
		if s.Elapsed >= 2*time.Second {
			cancel() // the caller went away while approval is pending
		}
	}
	_, err := e.activate(e.client(t, alice), ctx, req(privRoleID), onStatus)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	reqs := e.srv.Requests()
	if len(reqs) != 1 || reqs[0].Status != "Canceled" {
		t.Fatalf("emulator requests = %+v, want one Canceled", reqs)
	}
}

func TestPolicyRuleFailures(t *testing.T) {
	tests := []struct {
		name, role string
		mod        func(*pim.Request)
		rule, hint string
	}{
		{"justification", "Justified Role", func(r *pim.Request) { r.Justification = "" }, "JustificationRule", "justification"},
		{"ticket", "Ticketed Role", nil, "TicketingRule", "ticket"},
		{"mfa", "MFA Role", nil, "MfaRule", "MFA"},
		{"expiration", "Short Role", func(r *pim.Request) { r.Duration = 2 * time.Hour }, "ExpirationRule", "longer than the role allows"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, scenario())
			r := req(tt.role)
			if tt.mod != nil {
				tt.mod(&r)
			}
			_, err := e.activate(e.client(t, alice), context.Background(), r, nil)
			var ge *pim.GraphError
			if !errors.As(err, &ge) {
				t.Fatalf("err = %v, want *GraphError", err)
			}
			if ge.StatusCode != 400 || ge.Code != "RoleAssignmentRequestPolicyValidationFailed" ||
				len(ge.FailedRules) != 1 || ge.FailedRules[0] != tt.rule || ge.RequestID == "" {
				t.Errorf("GraphError = %+v, want 400 with rule %s and a request id", ge, tt.rule)
			}
			if m := pim.UserMessage(err); !strings.Contains(m, tt.hint) {
				t.Errorf("UserMessage = %q, want it to mention %q", m, tt.hint)
			}
			if n := e.srv.CreateCount(); n != 0 {
				t.Errorf("%d requests created", n)
			}
		})
	}
	t.Run("mfa satisfied", func(t *testing.T) {
		e := start(t, scenario())
		c := e.client(t, alice, func(c *pim.Config) {
			c.Credential = emuCred{srv: e.srv, oid: alice, opts: []pimtest.TokenOption{pimtest.WithMFA()}}
		})
		if _, err := e.activate(c, context.Background(), req("MFA Role"), nil); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRetryAfterIsHonoured(t *testing.T) {
	for _, ra := range []struct {
		header string
		want   time.Duration
	}{{"2", 2 * time.Second}, {"0.5", 500 * time.Millisecond}} {
		t.Run(ra.header, func(t *testing.T) {
			sc := scenario()
			// Graph requests: 1 eligibility, 2 assignments, 3 pending
			// look-up (429), 4 its retry, 5 create, 6 poll (429), 7 retry,
			// 8 read-back, 9 (429, unused).
			sc.Faults = pimtest.Faults{ThrottleEvery: 3, RetryAfter: ra.header}
			e := start(t, sc)
			g, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
			if err != nil {
				t.Fatal(err)
			}
			if g.RequestID == "" || e.srv.CreateCount() != 1 {
				t.Errorf("grant %+v, %d created", g, e.srv.CreateCount())
			}
			want := []time.Duration{ra.want, time.Second, ra.want} // Retry-After, poll interval, Retry-After
			got := e.clk.Waits()
			if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
				t.Errorf("waits = %v, want %v", got, want)
			}
			if h := e.srv.HitCount(); h != 8 {
				t.Errorf("%d Graph requests, want 8", h)
			}
		})
	}
}

func TestThrottledCreateLooksBeforePostingAgain(t *testing.T) {
	sc := scenario()
	// Graph requests: 1 eligibility, 2 assignments, 3 pending look-up,
	// 4 create (429), 5 look-up again, 6 create, 7 poll, 8 read-back (429), 9 its retry.
	sc.Faults = pimtest.Faults{ThrottleEvery: 4, RetryAfter: "3"}
	e := start(t, sc)
	g, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
	if err != nil {
		t.Fatal(err)
	}
	if e.srv.CreateCount() != 1 || g.RequestID != e.srv.Requests()[0].ID {
		t.Errorf("grant %+v, %d created; want one request", g, e.srv.CreateCount())
	}
	want := []time.Duration{3 * time.Second, time.Second, 3 * time.Second}
	if got := e.clk.Waits(); len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("waits = %v, want %v", got, want)
	}
	if h := e.srv.HitCount(); h != 9 {
		t.Errorf("%d Graph requests, want 9", h)
	}
}

func TestThrottledPastDeadline(t *testing.T) {
	sc := scenario()
	sc.Faults = pimtest.Faults{ThrottleEvery: 1, RetryAfter: "120"}
	e := start(t, sc)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := e.activate(e.client(t, alice), ctx, req(helpdeskID), nil)
	if !errors.Is(err, pim.ErrThrottled) {
		t.Fatalf("err = %v, want ErrThrottled", err)
	}
	if len(e.clk.Waits()) != 0 || e.srv.HitCount() != 1 {
		t.Errorf("waited %v over %d requests; a Retry-After past the deadline should end at once", e.clk.Waits(), e.srv.HitCount())
	}
	if m := pim.UserMessage(err); !strings.Contains(m, "throttl") {
		t.Errorf("UserMessage = %q", m)
	}
}

func TestServerErrorThenSuccess(t *testing.T) {
	sc := scenario()
	sc.Faults = pimtest.Faults{ErrorRate: 1, ErrorStatus: 503}
	e := start(t, sc)
	c := e.client(t, alice)
	var (
		g   pim.Grant
		err error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		g, err = c.Activate(context.Background(), req(helpdeskID), nil)
	}()
	// The first request failed and the client waits to retry: heal Graph.
	if !e.clk.BlockUntil(1, done) {
		t.Fatalf("Activate ended without retrying: %v", err)
	}
	e.srv.SetFaults(pimtest.Faults{})
	for e.clk.BlockUntil(1, done) {
		e.clk.Advance(500 * time.Millisecond)
	}
	<-done
	if err != nil {
		t.Fatal(err)
	}
	if g.RequestID == "" || e.srv.CreateCount() != 1 {
		t.Errorf("grant %+v, %d created", g, e.srv.CreateCount())
	}
	if w := e.clk.Waits(); len(w) == 0 || w[0] != time.Second {
		t.Errorf("waits = %v, want a first retry after the 1s backoff", w)
	}
}

func TestServerErrorsExhaustRetries(t *testing.T) {
	sc := scenario()
	sc.Faults = pimtest.Faults{ErrorRate: 1, ErrorStatus: 500}
	e := start(t, sc)
	_, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
	var ge *pim.GraphError
	if !errors.As(err, &ge) || ge.StatusCode != 500 {
		t.Fatalf("err = %v, want a 500 GraphError", err)
	}
	if h := e.srv.HitCount(); h != 4 {
		t.Errorf("%d Graph requests, want 4 (one GET and three retries)", h)
	}
}

// Must-show 3: one activation makes exactly one request even when the
// create POST's reply is lost.
func TestLostCreateReplyMakesOneRequest(t *testing.T) {
	for _, role := range []string{privRoleID, helpdeskID} { // still pending / provisioned at once
		t.Run(role, func(t *testing.T) {
			e := start(t, scenario())
			e.srv.DropNextCreateReply()
			onStatus := func(s pim.Status) {
				if s.Status == "PendingApproval" {
					if err := e.srv.Approve(s.RequestID); err != nil {
						t.Error(err)
					}
				}
			}
			g, err := e.activate(e.client(t, alice), context.Background(), req(role), onStatus)
			if err != nil {
				t.Fatal(err)
			}
			reqs := e.srv.Requests()
			if e.srv.CreateCount() != 1 || len(reqs) != 1 {
				t.Fatalf("%d create POSTs accepted, requests %+v; want exactly one", e.srv.CreateCount(), reqs)
			}
			if g.RequestID != reqs[0].ID || g.AlreadyActive {
				t.Errorf("grant %+v, want the one request %s", g, reqs[0].ID)
			}
		})
	}
}

// A request already pending for the role (another replica's, or an earlier
// call's) is waited on, not duplicated.
func TestExistingPendingRequestIsAdopted(t *testing.T) {
	e := start(t, scenario())
	existing := e.handMadeRequest(t)
	onStatus := func(s pim.Status) {
		if s.Status == "PendingApproval" {
			_ = e.srv.Approve(s.RequestID)
		}
	}
	g, err := e.activate(e.client(t, alice), context.Background(), req(privRoleID), onStatus)
	if err != nil {
		t.Fatal(err)
	}
	if g.RequestID != existing || e.srv.CreateCount() != 1 {
		t.Errorf("grant %+v, %d requests; want the existing request %s only", g, e.srv.CreateCount(), existing)
	}
}

// A burst of calls needing a role not yet resolved costs one Graph
// lookup; a caller whose context ends stops waiting.
func TestConcurrentResolutionsShareOneLookup(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice)
	const n = 50
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			id, err := c.Resolve(context.Background(), mgpolicy.Target{Role: "Privileged Role Administrator"})
			if err == nil && id != privRoleID {
				err = errors.New("resolved to " + id + ", want " + privRoleID)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if h := e.srv.HitCount(); h != 1 {
		t.Errorf("%d Graph requests for %d concurrent resolutions, want 1", h, n)
	}
	gone, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := c.Resolve(gone, mgpolicy.Target{Role: "Helpdesk Administrator"}); !errors.Is(err, context.Canceled) {
		t.Errorf("a caller whose context ended: %v, want context.Canceled", err)
	}
}

// handMadeRequest makes alice's request for privRoleID as another replica
// (or the portal) would, and returns its id.
func (e *env) handMadeRequest(t *testing.T) string {
	t.Helper()
	body := `{"action":"selfActivate","principalId":"` + alice + `","roleDefinitionId":"` + privRoleID +
		`","directoryScopeId":"/","justification":"by hand","scheduleInfo":{"startDateTime":"` + t0.Format(time.RFC3339) +
		`","expiration":{"type":"afterDuration","duration":"PT15M"}}}`
	hreq, _ := http.NewRequest(http.MethodPost, e.srv.URL()+"/roleManagement/directory/roleAssignmentScheduleRequests", strings.NewReader(body))
	hreq.Header.Set("Authorization", "Bearer "+e.srv.Token(alice))
	hreq.Header.Set("Content-Type", "application/json")
	resp, err := e.httpClient().Do(hreq)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("hand-made request: %s", resp.Status)
	}
	reqs := e.srv.Requests()
	return reqs[len(reqs)-1].ID
}

// httpClient trusts the emulator's certificate.
func (e *env) httpClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(e.srv.CACertPEM())
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// raceFirstCreate sends another replica's create POST just before the
// client's first one: the client's own POST is then answered
// PendingRoleAssignmentRequest, as Graph answers the loser of two replicas
// that both found no request and both posted.
type raceFirstCreate struct {
	e     *env
	t     *testing.T
	raced atomic.Bool
}

func (r *raceFirstCreate) Do(req *http.Request) (*http.Response, error) {
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/roleAssignmentScheduleRequests") && r.raced.CompareAndSwap(false, true) {
		r.e.handMadeRequest(r.t)
	}
	return r.e.httpClient().Do(req)
}

// A replica whose create POST loses to another's is answered
// PendingRoleAssignmentRequest: it finds that request and waits on it.
func TestPendingRoleAssignmentRequestIsAdopted(t *testing.T) {
	e := start(t, scenario())
	race := &raceFirstCreate{e: e, t: t}
	c := e.client(t, alice, func(c *pim.Config) { c.Transport = race })
	onStatus := func(s pim.Status) {
		if s.Status == "PendingApproval" {
			_ = e.srv.Approve(s.RequestID)
		}
	}
	g, err := e.activate(c, context.Background(), req(privRoleID), onStatus)
	if err != nil {
		t.Fatal(err)
	}
	reqs := e.srv.Requests()
	if !race.raced.Load() || len(reqs) != 1 || g.RequestID != reqs[0].ID || reqs[0].Justification != "by hand" {
		t.Fatalf("grant %+v, requests %+v; want the other replica's request only", g, reqs)
	}
}

// A request this gate adopted is not withdrawn when its caller goes away:
// whoever made it (another replica's callers) may still be waiting on it.
func TestAdoptedRequestIsNotCancelled(t *testing.T) {
	for _, tt := range []struct {
		name string
		mod  func(*env, *testing.T) func(*pim.Config)
	}{
		{"found pending before posting", func(e *env, t *testing.T) func(*pim.Config) {
			e.handMadeRequest(t)
			return func(*pim.Config) {}
		}},
		{"answered PendingRoleAssignmentRequest", func(e *env, t *testing.T) func(*pim.Config) {
			return func(c *pim.Config) { c.Transport = &raceFirstCreate{e: e, t: t} }
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := start(t, scenario())
			c := e.client(t, alice, tt.mod(e, t))
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			onStatus := func(s pim.Status) {
				if s.Elapsed >= 2*time.Second {
					cancel()
				}
			}
			if _, err := e.activate(c, ctx, req(privRoleID), onStatus); !errors.Is(err, context.Canceled) {
				t.Fatalf("err = %v, want context.Canceled", err)
			}
			reqs := e.srv.Requests()
			if len(reqs) != 1 || reqs[0].Status != pimtest.StatusPendingApproval {
				t.Fatalf("requests %+v, want the adopted one still pending", reqs)
			}
		})
	}
}

func TestPaging(t *testing.T) {
	sc := scenario()
	sc.PageSize = 1
	// Fill every list ahead of the role we want.
	sc.Active = []pimtest.Assignment{{Principal: alice, Role: shortID, Duration: time.Hour}, {Principal: alice, Role: mfaID, Duration: time.Hour}}
	e := start(t, sc)
	c := e.client(t, alice)
	g, err := e.activate(c, context.Background(), req("Denied Role"), nil)
	var re *pim.RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("err = %v, grant %+v; want the Denied refusal", err, g)
	}
	// With one item per page, eligibility alone takes 8 pages; so the whole
	// activation must have followed nextLinks.
	if h := e.srv.HitCount(); h < 8+2+1 {
		t.Errorf("only %d Graph requests: nextLinks not followed", h)
	}
	// The already-active role found on a later page.
	g, err = e.activate(c, context.Background(), req(mfaID), nil)
	if err != nil || !g.AlreadyActive || !g.End.Equal(t0.Add(time.Hour)) {
		t.Errorf("grant %+v, %v; want the active assignment from page 2", g, err)
	}
}

func TestInvalidPrincipalMakesNoGraphCall(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice)
	for _, p := range []string{"", "alice@contoso.com", "not-a-guid", "{" + alice + "}", alice + " ", "../" + alice} {
		r := req(helpdeskID)
		r.Principal = p
		_, err := c.Activate(context.Background(), r, nil)
		if !errors.Is(err, pim.ErrInvalidPrincipal) {
			t.Errorf("principal %q: err = %v, want ErrInvalidPrincipal", p, err)
		}
	}
	if h := e.srv.HitCount(); h != 0 {
		t.Errorf("%d Graph requests, want 0", h)
	}
}

func TestPlainHTTPOnLoopback(t *testing.T) {
	e := start(t, scenario(), pimtest.WithPlainHTTP())
	if !strings.HasPrefix(e.srv.URL(), "http://127.0.0.1:") {
		t.Fatalf("URL = %s", e.srv.URL())
	}
	g, err := e.activate(e.client(t, alice), context.Background(), req(helpdeskID), nil)
	if err != nil || g.RequestID == "" {
		t.Fatalf("grant %+v, %v", g, err)
	}
}

func TestGraphURLValidation(t *testing.T) {
	cred := emuCred{}
	for _, tt := range []struct {
		url string
		ok  bool
	}{
		{"https://graph.microsoft.com/v1.0", true},
		{"http://127.0.0.1:8080/v1.0", true},
		{"http://[::1]:8080/v1.0", true},
		{"http://localhost:8080/v1.0", true},
		{"http://graph.microsoft.com/v1.0", false},
		{"http://10.0.0.1/v1.0", false},
		{"http://localhost.evil.example/v1.0", false},
		{"ftp://127.0.0.1/v1.0", false},
		{"https:///v1.0", false},
	} {
		_, err := pim.New(pim.Config{GraphURL: tt.url, Credential: cred})
		if (err == nil) != tt.ok {
			t.Errorf("New(%s) err = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}

func TestUntrustedCertificateIsUnreachable(t *testing.T) {
	e := start(t, scenario())
	c := e.client(t, alice, func(c *pim.Config) { c.CAFile = "" })
	_, err := e.activate(c, context.Background(), req(helpdeskID), nil)
	if !errors.Is(err, pim.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
}

func TestUnreachableGraph(t *testing.T) {
	e := start(t, scenario())
	url := e.srv.URL()
	e.srv.Close()
	c := e.client(t, alice, func(c *pim.Config) { c.GraphURL = url })
	_, err := e.activate(c, context.Background(), req(helpdeskID), nil)
	if !errors.Is(err, pim.ErrUnreachable) {
		t.Fatalf("err = %v, want ErrUnreachable", err)
	}
	if m := pim.UserMessage(err); !strings.Contains(m, "unreachable") {
		t.Errorf("UserMessage = %q", m)
	}
}
