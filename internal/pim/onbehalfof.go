package pim

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	lru "github.com/hashicorp/golang-lru/v2"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// ClientSecretEnv names the environment variable holding the gate's client
// secret for credential: onbehalfof.
const ClientSecretEnv = "AZURE_CLIENT_SECRET"

// ErrNoCaller is an on-behalf-of activation without a caller's token.
var ErrNoCaller = errors.New("pim: on-behalf-of activation acts for the caller of each request, and this request has no authenticated caller (set serve.auth)")

// OnBehalfOfConfig configures an OnBehalfOf.
type OnBehalfOfConfig struct {
	TenantID string
	ClientID string // the gate's app registration
	Secret   string
	// Authority is the sign-in host (https://login.microsoftonline.com);
	// AuthorityCAFile an extra CA trusted for it (a test issuer's).
	Authority       string
	AuthorityCAFile string
	// Client is the template of each user's Client; its Credential is
	// the user's on-behalf-of credential.
	Client Config
	// MaxUsers bounds the users remembered; the least recent is dropped.
	MaxUsers int
}

// OnBehalfOf activates each user's roles with a Graph token for that user,
// obtained by exchanging the token the user presented to the gate
// (Entra's on-behalf-of flow, azidentity's OnBehalfOfCredential). Each user
// has their own Client, whose bearer policy caches that user's Graph token
// until shortly before it expires; a new token from the user replaces the
// credential. It is safe for concurrent use.
type OnBehalfOf struct {
	cfg   OnBehalfOfConfig
	cred  azcore.ClientOptions
	mu    sync.Mutex // serialises Remember's check-then-replace
	users *lru.Cache[string, *oboUser]
}

type oboUser struct {
	assertion [sha256.Size]byte // digest of the token the client was made with
	client    *Client
}

// NewOnBehalfOf validates cfg. It makes no network calls.
func NewOnBehalfOf(cfg OnBehalfOfConfig) (*OnBehalfOf, error) {
	switch {
	case !IsGUID(cfg.TenantID):
		return nil, fmt.Errorf("pim: onbehalfof: tenant %q is not a GUID", cfg.TenantID)
	case !IsGUID(cfg.ClientID):
		return nil, errors.New("pim: onbehalfof needs approvals.clientId, the gate's app registration")
	case cfg.Secret == "":
		return nil, fmt.Errorf("pim: onbehalfof needs the gate's client secret in %s", ClientSecretEnv)
	}
	if cfg.MaxUsers <= 0 {
		cfg.MaxUsers = 4096
	}
	users, err := lru.New[string, *oboUser](cfg.MaxUsers)
	if err != nil {
		return nil, err
	}
	hc, err := httpClient(cfg.AuthorityCAFile)
	if err != nil {
		return nil, err
	}
	if cfg.Client.Transport == nil {
		if cfg.Client.Transport, err = httpClient(cfg.Client.CAFile); err != nil {
			return nil, err
		}
	}
	cfg.Client.PrincipalID, cfg.Client.CredentialKind = "", "onbehalfof"
	o := &OnBehalfOf{cfg: cfg, users: users, cred: azcore.ClientOptions{Transport: hc}}
	if cfg.Authority != "" {
		o.cred.Cloud = cloud.Configuration{ActiveDirectoryAuthorityHost: strings.TrimRight(cfg.Authority, "/") + "/"}
	}
	return o, nil
}

// Remember makes assertion, a token principal presented to the gate (its
// audience the gate), the one their activations are made with from now on.
// It costs nothing when the token is the one already remembered.
func (o *OnBehalfOf) Remember(principal, assertion string) error {
	principal = strings.ToLower(principal)
	digest := sha256.Sum256([]byte(assertion))
	o.mu.Lock()
	defer o.mu.Unlock()
	if u, ok := o.users.Get(principal); ok && u.assertion == digest {
		return nil
	}
	cred, err := azidentity.NewOnBehalfOfCredentialWithSecret(o.cfg.TenantID, o.cfg.ClientID, assertion, o.cfg.Secret,
		&azidentity.OnBehalfOfCredentialOptions{ClientOptions: o.cred, DisableInstanceDiscovery: o.cfg.Authority != ""})
	if err != nil {
		return fmt.Errorf("pim: onbehalfof: %w", err)
	}
	cc := o.cfg.Client
	cc.Credential = cred
	cc.PrincipalID = principal
	c, err := New(cc)
	if err != nil {
		return err
	}
	o.users.Add(principal, &oboUser{assertion: digest, client: c})
	return nil
}

func (o *OnBehalfOf) client(principal string) (*Client, error) {
	if u, ok := o.users.Get(strings.ToLower(principal)); ok {
		return u.client, nil
	}
	return nil, fmt.Errorf("%w: no token of %s is at hand; call again", ErrNoCaller, principal)
}

type callerKey struct{}

// WithCaller marks ctx as serving principal's request.
func WithCaller(ctx context.Context, principal string) context.Context {
	return context.WithValue(ctx, callerKey{}, principal)
}

// Principal is never asked of an OnBehalfOf: each call carries its own.
func (o *OnBehalfOf) Principal(context.Context) (string, error) { return "", ErrNoCaller }

// Resolve resolves t with the caller's token (see WithCaller).
func (o *OnBehalfOf) Resolve(ctx context.Context, t mgpolicy.Target) (string, error) {
	p, _ := ctx.Value(callerKey{}).(string)
	c, err := o.client(p)
	if err != nil {
		return "", err
	}
	return c.Resolve(ctx, t)
}

// Activate activates for req.Principal with that user's token.
func (o *OnBehalfOf) Activate(ctx context.Context, req Request, onStatus func(Status)) (Grant, error) {
	c, err := o.client(req.Principal)
	if err != nil {
		return Grant{}, err
	}
	return c.Activate(ctx, req, onStatus)
}

// Active reads principal's assignment of t with that user's token.
func (o *OnBehalfOf) Active(ctx context.Context, principal string, t mgpolicy.Target) (Grant, bool, error) {
	c, err := o.client(principal)
	if err != nil {
		return Grant{}, false, err
	}
	return c.Active(ctx, principal, t)
}
