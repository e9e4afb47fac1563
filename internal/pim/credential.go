package pim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// TokenEnv names the environment variable the "token" credential reads when
// no token file is configured.
const TokenEnv = "MCP_GATE_GRAPH_TOKEN"

// CredentialOptions tunes NewCredential. ClientID is required for
// "browser" and "devicecode"; every other field is optional.
type CredentialOptions struct {
	TenantID  string
	ClientID  string // app registration (devicecode, browser, workloadidentity) or user-assigned managed identity
	TokenFile string // "token": read the Graph bearer token from this file (else TokenEnv)
	// ARMTokenFile is, for "token", the file of the bearer token for Azure
	// Resource Manager (else ARMTokenEnv), which Azure roles need.
	ARMTokenFile string
	RecordFile   string    // "browser", "devicecode": the authentication record `mcp-gate login` keeps; empty: none
	Prompt       io.Writer // "devicecode": where the sign-in instructions go; default os.Stderr
}

// CredentialKinds lists the names NewCredential accepts.
var CredentialKinds = []string{"default", "azurecli", "devicecode", "browser", "managedidentity", "workloadidentity", "environment", "token"}

// NewCredential builds the credential named by approvals.credential.
//
// "default" is azidentity's DefaultAzureCredential, a ChainedTokenCredential
// over environment, workload identity, managed identity and Azure CLI (and
// the Azure Developer CLI): unlike a bare ManagedIdentityCredential it probes
// IMDS briefly, so it does not stall on a desktop. "token" reads a bearer
// token minted elsewhere (or by the PIM emulator) from TokenFile or TokenEnv.
func NewCredential(kind string, opts CredentialOptions) (azcore.TokenCredential, error) {
	prompt := opts.Prompt
	if prompt == nil {
		prompt = os.Stderr
	}
	var (
		cred azcore.TokenCredential
		err  error
	)
	switch kind {
	case "", "default":
		cred, err = azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{TenantID: opts.TenantID})
	case "azurecli":
		var cli *azidentity.AzureCLICredential
		if cli, err = azidentity.NewAzureCLICredential(&azidentity.AzureCLICredentialOptions{TenantID: opts.TenantID}); err == nil {
			cred = azureCLICredential{cli}
		}
	case "devicecode", "browser":
		cred, err = newInteractive(kind, opts, prompt)
	case "managedidentity":
		o := &azidentity.ManagedIdentityCredentialOptions{}
		if opts.ClientID != "" {
			o.ID = azidentity.ClientID(opts.ClientID)
		}
		cred, err = azidentity.NewManagedIdentityCredential(o)
	case "workloadidentity":
		cred, err = azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{
			TenantID: opts.TenantID, ClientID: opts.ClientID,
		})
	case "environment":
		cred, err = azidentity.NewEnvironmentCredential(nil)
	case "token":
		cred, err = newStaticCredential(opts.TokenFile, opts.ARMTokenFile)
	default:
		return nil, fmt.Errorf("pim: unknown credential %q (want one of %s)", kind, strings.Join(CredentialKinds, ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("pim: credential %s: %w", kind, err)
	}
	return cred, nil
}

// ErrNoAzureCLI is credential azurecli failing because the Azure CLI is not
// installed, or not on the PATH mcp-gate runs with: `az login` cannot help.
var ErrNoAzureCLI = errors.New("pim: the Azure CLI (az) is not installed or not on PATH")

// errAzureCLI is credential azurecli failing with the CLI present: not
// signed in, another tenant, an expired session.
var errAzureCLI = errors.New("pim: the Azure CLI gave no Graph token")

// azureCLICredential tells a missing Azure CLI from one that is not signed
// in, which azidentity reports alike; each needs its own advice.
type azureCLICredential struct{ azcore.TokenCredential }

func (c azureCLICredential) GetToken(ctx context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tok, err := c.TokenCredential.GetToken(ctx, o)
	if err == nil || ctx.Err() != nil {
		return tok, err
	}
	// azidentity runs az through the shell, which searches the same PATH.
	if _, lookErr := exec.LookPath("az"); lookErr != nil {
		return tok, fmt.Errorf("%w: %w", ErrNoAzureCLI, err)
	}
	return tok, fmt.Errorf("%w: %w", errAzureCLI, err)
}

// staticCredential hands out bearer tokens minted elsewhere: one for Graph
// and, for Azure roles, one for ARM (a token has one audience). A file is
// read on every GetToken so a token refreshed on disk is picked up.
type staticCredential struct {
	graph, arm tokenSource
}

// tokenSource is a file to read, else a token from the environment.
type tokenSource struct {
	file, env, envName string
}

func newStaticCredential(file, armFile string) (*staticCredential, error) {
	s := &staticCredential{
		graph: tokenSource{file: file, env: strings.TrimSpace(os.Getenv(TokenEnv)), envName: TokenEnv},
		arm:   tokenSource{file: armFile, env: strings.TrimSpace(os.Getenv(ARMTokenEnv)), envName: ARMTokenEnv},
	}
	if s.graph.file == "" && s.graph.env == "" && s.arm.file == "" && s.arm.env == "" {
		return nil, fmt.Errorf("no token: set a token file or %s (and, for Azure roles, an ARM token file or %s)", TokenEnv, ARMTokenEnv)
	}
	return s, nil
}

func (s *staticCredential) GetToken(_ context.Context, o policy.TokenRequestOptions) (azcore.AccessToken, error) {
	src, what := s.graph, "Microsoft Graph"
	if slices.Contains(o.Scopes, ARMScope) {
		src, what = s.arm, "Azure Resource Manager"
	}
	tok, from := src.env, src.envName
	if src.file != "" {
		data, err := os.ReadFile(src.file)
		if err != nil {
			return azcore.AccessToken{}, fmt.Errorf("reading the %s token: %w", what, err)
		}
		tok, from = strings.TrimSpace(string(data)), src.file
	}
	if tok == "" && src.file == "" {
		return azcore.AccessToken{}, fmt.Errorf("no %s token: set its token file or %s", what, src.envName)
	}
	if tok == "" {
		return azcore.AccessToken{}, fmt.Errorf("the token in %s is empty", from)
	}
	claims, err := decodeClaims(tok)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("the token in %s: %w", from, err)
	}
	if claims.Exp == 0 {
		return azcore.AccessToken{}, fmt.Errorf("the token in %s has no exp claim", from)
	}
	if exp := claims.expiry(); !exp.After(time.Now()) {
		return azcore.AccessToken{}, errors.New("the token in " + from + " expired at " + exp.UTC().Format(time.RFC3339) + ": mint a new one")
	}
	return azcore.AccessToken{Token: tok, ExpiresOn: claims.expiry()}, nil
}
