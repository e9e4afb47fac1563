package pim

import (
	"context"
	"crypto"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	lru "github.com/hashicorp/golang-lru/v2"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// The environment variables that hold the gate's own credential for
// credential: onbehalfof; exactly one of the secret, the certificate path
// and the federated token file is set.
const (
	ClientSecretEnv              = "AZURE_CLIENT_SECRET"
	ClientCertificatePathEnv     = "MCP_GATE_CLIENT_CERTIFICATE_PATH"
	ClientCertificatePasswordEnv = "MCP_GATE_CLIENT_CERTIFICATE_PASSWORD"
	// FederatedTokenFileEnv is where Kubernetes workload identity projects
	// the pod's service account token; it is rotated on disk, so it is read
	// again for each exchange.
	FederatedTokenFileEnv = "AZURE_FEDERATED_TOKEN_FILE"
)

// maxCredentialFile bounds the certificate and federated token files read.
const maxCredentialFile = 1 << 20

// ClientAuth is how the gate's app registration authenticates to Entra in
// the on-behalf-of exchange: exactly one of a client secret, a certificate
// (Certs and Key) or a federated assertion read from AssertionFile.
type ClientAuth struct {
	Secret        string
	Certs         []*x509.Certificate
	Key           crypto.PrivateKey
	AssertionFile string
}

// ClientAuthFromEnv reads the gate's credential from the environment
// (getenv is os.Getenv outside tests): AZURE_CLIENT_SECRET, else
// MCP_GATE_CLIENT_CERTIFICATE_PATH (PEM or PFX, with
// MCP_GATE_CLIENT_CERTIFICATE_PASSWORD if it is encrypted), else
// AZURE_FEDERATED_TOKEN_FILE. More than one, or none, is an error.
func ClientAuthFromEnv(getenv func(string) string) (ClientAuth, error) {
	var set []string
	for _, k := range []string{ClientSecretEnv, ClientCertificatePathEnv, FederatedTokenFileEnv} {
		if getenv(k) != "" {
			set = append(set, k)
		}
	}
	switch {
	case len(set) == 0:
		return ClientAuth{}, fmt.Errorf("pim: onbehalfof needs the gate's credential: set one of %s (a client secret), %s (a certificate) or %s (workload identity)",
			ClientSecretEnv, ClientCertificatePathEnv, FederatedTokenFileEnv)
	case len(set) > 1:
		return ClientAuth{}, fmt.Errorf("pim: onbehalfof takes one credential of the gate, and %s are all set: unset all but one", strings.Join(set, " and "))
	}
	switch set[0] {
	case ClientSecretEnv:
		return ClientAuth{Secret: getenv(ClientSecretEnv)}, nil
	case ClientCertificatePathEnv:
		path := getenv(ClientCertificatePathEnv)
		data, err := readBounded(path)
		if err != nil {
			return ClientAuth{}, fmt.Errorf("pim: onbehalfof: the certificate in %s: %w", ClientCertificatePathEnv, err)
		}
		var pw []byte
		if p := getenv(ClientCertificatePasswordEnv); p != "" {
			pw = []byte(p)
		}
		certs, key, err := azidentity.ParseCertificates(data, pw)
		if err != nil {
			return ClientAuth{}, fmt.Errorf("pim: onbehalfof: the certificate %s (%s): %w", path, ClientCertificatePathEnv, err)
		}
		return ClientAuth{Certs: certs, Key: key}, nil
	default:
		path := getenv(FederatedTokenFileEnv)
		if _, err := readAssertion(path); err != nil {
			return ClientAuth{}, fmt.Errorf("pim: onbehalfof: the federated token in %s: %w", FederatedTokenFileEnv, err)
		}
		return ClientAuth{AssertionFile: path}, nil
	}
}

// readBounded reads a credential file of at most maxCredentialFile bytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCredentialFile+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCredentialFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxCredentialFile)
	}
	return data, nil
}

// readAssertion reads the federated token as it is on disk now.
func readAssertion(path string) (string, error) {
	data, err := readBounded(path)
	if err != nil {
		return "", err
	}
	a := strings.TrimSpace(string(data))
	if a == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return a, nil
}

func (a ClientAuth) kinds() int {
	n := 0
	for _, set := range []bool{a.Secret != "", len(a.Certs) > 0 || a.Key != nil, a.AssertionFile != ""} {
		if set {
			n++
		}
	}
	return n
}

// ErrNoCaller is an on-behalf-of activation without a caller's token.
var ErrNoCaller = errors.New("pim: on-behalf-of activation acts for the caller of each request, and this request has no authenticated caller (set serve.auth)")

// OnBehalfOfConfig configures an OnBehalfOf.
type OnBehalfOfConfig struct {
	TenantID string
	ClientID string // the gate's app registration
	Auth     ClientAuth
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
	case cfg.Auth.kinds() != 1:
		return nil, fmt.Errorf("pim: onbehalfof needs exactly one credential of the gate: a client secret (%s), a certificate (%s) or a federated token file (%s)",
			ClientSecretEnv, ClientCertificatePathEnv, FederatedTokenFileEnv)
	case (len(cfg.Auth.Certs) > 0) != (cfg.Auth.Key != nil):
		return nil, errors.New("pim: onbehalfof: the certificate needs both the certificate and its private key")
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
	cfg.Client.PrincipalID, cfg.Client.CredentialKind = "", mgpolicy.CredentialOnBehalfOf
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
	cred, err := o.credential(assertion)
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

// credential is the on-behalf-of credential for a user's token, the gate
// authenticated by whichever of its credentials is configured.
func (o *OnBehalfOf) credential(assertion string) (*azidentity.OnBehalfOfCredential, error) {
	opts := &azidentity.OnBehalfOfCredentialOptions{ClientOptions: o.cred, DisableInstanceDiscovery: o.cfg.Authority != ""}
	a := o.cfg.Auth
	switch {
	case a.Secret != "":
		return azidentity.NewOnBehalfOfCredentialWithSecret(o.cfg.TenantID, o.cfg.ClientID, assertion, a.Secret, opts)
	case a.Key != nil:
		return azidentity.NewOnBehalfOfCredentialWithCertificate(o.cfg.TenantID, o.cfg.ClientID, assertion, a.Certs, a.Key, opts)
	default:
		return azidentity.NewOnBehalfOfCredentialWithClientAssertions(o.cfg.TenantID, o.cfg.ClientID, assertion,
			func(context.Context) (string, error) { return readAssertion(a.AssertionFile) }, opts)
	}
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
