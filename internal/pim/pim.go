// Package pim activates Microsoft Entra directory roles through the
// Microsoft Graph PIM API (v1.0): it resolves a role, checks that the user is
// eligible and whether the role is already active, creates a selfActivate
// request, follows it to an outcome and explains every failure in words the
// user can act on. The endpoints and wire shapes are Microsoft's (see
// https://learn.microsoft.com/graph/api/resources/privilegedidentitymanagementv3-overview);
// docs/pim-emulator.md lists those used and the errors they answer.
package pim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"golang.org/x/sync/singleflight"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// GraphScope is the OAuth scope of every token the client asks for.
const GraphScope = "https://graph.microsoft.com/.default"

// DefaultGraphURL is Microsoft Graph's v1.0 endpoint.
const DefaultGraphURL = "https://graph.microsoft.com/v1.0"

// ARMScope is the OAuth scope of the tokens for Azure Resource Manager,
// which activates Azure resource roles.
const ARMScope = "https://management.azure.com/.default"

// DefaultARMURL is Azure Resource Manager's endpoint.
const DefaultARMURL = "https://management.azure.com"

// Clock is the time source for polling and backoff, so tests can use a fake.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Request asks for one activation of a role or group for Principal.
type Request struct {
	Principal string // Entra object id (GUID) of the user
	// Target is what to activate; its Role is a display name or an id.
	mgpolicy.Target
	Duration      time.Duration // how long the grant should last
	Justification string
	TicketNumber  string // ticketInfo is sent only when set
	TicketSystem  string
}

// Status is what the caller can show the user while a request is pending.
type Status struct {
	RequestID string
	Status    string        // Graph's status, e.g. PendingApproval
	Elapsed   time.Duration // since Activate started
}

// Grant is an active assignment of a role, as read from Graph.
type Grant struct {
	RoleDefinitionID string
	RequestID        string // empty when the role was already active
	Start, End       time.Time
	Seen             time.Time // when the read that showed it live was sent
	AlreadyActive    bool
}

// Config configures a Client. Only Credential is required.
type Config struct {
	GraphURL       string // default DefaultGraphURL; http:// only for a loopback host
	ARMURL         string // default DefaultARMURL; http:// only for a loopback host
	CAFile         string // extra PEM CA certificate(s) to trust besides the system pool (Graph and ARM)
	Credential     azcore.TokenCredential
	CredentialKind string             // approvals.credential: decides how a claims challenge is met
	TenantID       string             // for the az login command a claims challenge asks of azurecli users
	PrincipalID    string             // the user's object id; empty: the oid of the credential's token
	PollInterval   time.Duration      // first poll delay, default 1s
	PollMaxBackoff time.Duration      // cap of the doubling poll delay, default 30s
	Clock          Clock              // default the real clock
	Jitter         func() float64     // uniform in [0,1); default math/rand
	Logger         *slog.Logger       // default discards
	Transport      policy.Transporter // replaces the HTTP client built from CAFile (tests, proxies)
	// Observe, if set, is told the status of each Graph and ARM HTTP answer (each
	// retry too), or 0 for a request that got none: for metrics. It must
	// not block.
	Observe func(status int)
}

// Client talks to PIM for one credential: Graph for directory roles and
// groups, ARM for Azure resource roles. It is safe for concurrent use.
type Client struct {
	transport   markUnreachable
	base        *url.URL         // Graph
	pl          runtime.Pipeline // Graph, with Graph tokens
	arm         *url.URL
	armPl       runtime.Pipeline // ARM, with ARM tokens
	cred        azcore.TokenCredential
	kind        string
	tenantID    string
	principalID string
	poll, max   time.Duration
	clock       Clock
	jitter      func() float64
	log         *slog.Logger

	// resolving joins concurrent resolutions of one name (see Resolve).
	resolving singleflight.Group

	mu     sync.Mutex
	roles  map[string]string      // role name -> roleDefinitionId
	azure  map[string]string      // Azure role name and scope -> role definition id (full ARM id)
	groups map[string]string      // group name -> object id
	oid    string                 // cached oid of the credential's token
	needs  map[string]*GraphError // roleDefinitionId -> its last claims challenge, met up front since
}

// New validates cfg and builds a Client. It makes no network calls.
func New(cfg Config) (*Client, error) {
	if cfg.Credential == nil {
		return nil, errors.New("pim: a credential is required")
	}
	if cfg.GraphURL == "" {
		cfg.GraphURL = DefaultGraphURL
	}
	base, err := parseGraphURL(cfg.GraphURL)
	if err != nil {
		return nil, err
	}
	if cfg.ARMURL == "" {
		cfg.ARMURL = DefaultARMURL
	}
	arm, err := parseBaseURL("armURL", cfg.ARMURL)
	if err != nil {
		return nil, err
	}
	if cfg.PrincipalID != "" && !IsGUID(cfg.PrincipalID) {
		return nil, fmt.Errorf("%w: principalId %q", ErrInvalidPrincipal, cfg.PrincipalID)
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.PollMaxBackoff < cfg.PollInterval {
		cfg.PollMaxBackoff = max(30*time.Second, cfg.PollInterval)
	}
	if cfg.Clock == nil {
		cfg.Clock = realClock{}
	}
	if cfg.Jitter == nil {
		cfg.Jitter = rand.Float64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	var transport policy.Transporter = cfg.Transport
	if transport == nil {
		hc, err := httpClient(cfg.CAFile)
		if err != nil {
			return nil, err
		}
		transport = hc
	}
	c := &Client{
		transport:   markUnreachable{next: transport, observe: cfg.Observe},
		base:        base,
		arm:         arm,
		cred:        cfg.Credential,
		kind:        cfg.CredentialKind,
		tenantID:    cfg.TenantID,
		principalID: cfg.PrincipalID,
		poll:        cfg.PollInterval,
		max:         cfg.PollMaxBackoff,
		clock:       cfg.Clock,
		jitter:      cfg.Jitter,
		log:         cfg.Logger,
		roles:       map[string]string{},
		groups:      map[string]string{},
		azure:       map[string]string{},
		needs:       map[string]*GraphError{},
	}
	c.pl = c.pipeline(base, GraphScope, stepUpPolicy{})
	c.armPl = c.pipeline(arm, ARMScope)
	return c, nil
}

// pipeline sends requests to base with tokens for scope, retrying GETs.
func (c *Client) pipeline(base *url.URL, scope string, extra ...policy.Policy) runtime.Pipeline {
	perRetry := append([]policy.Policy{runtime.NewBearerTokenPolicy(authCredential{c.cred}, []string{scope},
		&policy.BearerTokenOptions{InsecureAllowCredentialWithHTTP: base.Scheme == "http"})}, extra...)
	return runtime.NewPipeline("mcp-gate/pim", "v1", runtime.PipelineOptions{
		PerCall:  []policy.Policy{&retryPolicy{c: c}},
		PerRetry: perRetry,
	}, &policy.ClientOptions{
		// Retries are ours (retryPolicy): they run on Clock and never replay the create POST.
		Retry:     policy.RetryOptions{MaxRetries: -1},
		Transport: c.transport,
		Telemetry: policy.TelemetryOptions{ApplicationID: "mcp-gate"},
	})
}

// parseGraphURL accepts https, and http only for a loopback host, because a
// bearer token sent over plain http anywhere else could be read on the way.
func parseGraphURL(raw string) (*url.URL, error) { return parseBaseURL("graphURL", raw) }

func parseBaseURL(setting, raw string) (*url.URL, error) {
	u, err := url.Parse(strings.TrimRight(raw, "/"))
	if err != nil {
		return nil, fmt.Errorf("pim: %s: %w", setting, err)
	}
	switch u.Scheme {
	case "https":
	case "http":
		if !isLoopback(u.Hostname()) {
			return nil, fmt.Errorf("pim: %s %s: plain http is allowed only for a loopback host (127.0.0.1, ::1, localhost); use https", setting, raw)
		}
	default:
		return nil, fmt.Errorf("pim: %s %q: want an https URL", setting, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("pim: %s %q has no host", setting, raw)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return nil, fmt.Errorf("pim: %s %q must not have a query or fragment", setting, raw)
	}
	return u, nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func httpClient(caFile string) (*http.Client, error) {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.ResponseHeaderTimeout = time.Minute
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("pim: graphCAFile: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("pim: graphCAFile %s: no PEM certificate found", caFile)
		}
		t.TLSClientConfig.RootCAs = pool
	}
	// Redirects would carry the request elsewhere; Graph does not redirect these APIs.
	return &http.Client{Transport: t, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}, nil
}

// authCredential marks token failures so callers can tell "sign in again"
// from "Graph unreachable".
type authCredential struct{ azcore.TokenCredential }

func (a authCredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := a.TokenCredential.GetToken(ctx, o)
	if err != nil && ctx.Err() == nil {
		return tok, fmt.Errorf("%w: %w", ErrAuth, err)
	}
	return tok, err
}

// graphToken is how the client asks for its Graph token outside the
// pipeline. EnableCAE matches azcore's bearer token policy, which always
// declares CAE: azidentity keeps CAE and non-CAE tokens in separate caches,
// so a token asked for one way is not found the other way, and an
// interactive credential would ask the user to sign in again.
func graphToken() policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{GraphScope}, EnableCAE: true}
}
