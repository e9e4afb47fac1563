package pim

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// ChallengeError says a role needs a token with more than the credential
// gave: MFA done in the sign-in, or a Conditional Access authentication
// context (a claims challenge).
type ChallengeError struct {
	Graph   *GraphError // the refusal that carried the challenge
	Kind    string      // the credential, as approvals.credential names it
	Tenant  string      // for the az login command; may be empty
	Retried bool        // a token asked for with the claims was refused too
	Err     error       // why asking for that token failed
}

func (e *ChallengeError) Error() string {
	msg := "pim: the role needs a token meeting the claims " + e.Graph.Claims + " (" + e.Graph.Error() + ")"
	if e.Err != nil {
		msg += ": asking for one failed: " + e.Err.Error()
	}
	return msg
}

func (e *ChallengeError) Unwrap() []error { return []error{e.Graph, e.Err} }

// need says what the role asks of the sign-in, in words.
func (e *ChallengeError) need() string {
	if e.Graph.Code != codeAcrs {
		return "multi-factor authentication (MFA) in the sign-in (PIM rule MfaRule)"
	}
	var c struct {
		AccessToken struct {
			ACRS struct {
				Value string `json:"value"`
			} `json:"acrs"`
		} `json:"access_token"`
	}
	if json.Unmarshal([]byte(e.Graph.Claims), &c) == nil && c.AccessToken.ACRS.Value != "" {
		return fmt.Sprintf("the Conditional Access authentication context %q in the sign-in", c.AccessToken.ACRS.Value)
	}
	return "a Conditional Access authentication context in the sign-in"
}

// ClientClaims is the claims challenge for the caller's own client to
// sign in for, when the caller's sign-in is what the role's token comes
// from (on-behalf-of): the gate passes it on as a 401 (see
// authn.RequireClaims). Empty for the other credentials, whose sign-in is
// the gate's.
func (e *ChallengeError) ClientClaims() string {
	if e.Kind != mgpolicy.CredentialOnBehalfOf {
		return ""
	}
	return e.Graph.Claims
}

// UserMessage says what the role needs and what to do.
func (e *ChallengeError) UserMessage() string {
	need := e.need()
	var se *SignInError
	switch {
	case e.Kind == mgpolicy.CredentialOnBehalfOf:
		return "this role requires " + need + ", which your sign-in to the gate does not show: sign in to your MCP client again meeting it " +
			"(over HTTP the gate answers such a call with 401 and an Entra claims challenge, error=insufficient_claims, unless the call's progress was already streamed), then call again"
	case errors.As(e.Err, &se):
		return "this role requires " + need + ": " + se.UserMessage()
	case e.Err != nil:
		return fmt.Sprintf("this role requires %s, and signing in again for it failed (%v): run `mcp-gate login`, then call again", need, e.Err)
	case e.Retried:
		return "this role requires " + need + ", and the token Entra issued after signing in again still does not show it: " +
			"complete every verification Entra asks for when you sign in (`mcp-gate login`), or ask an administrator whether the Conditional Access policy can be met from this device"
	case e.Kind == "azurecli":
		tenant := ""
		if e.Tenant != "" {
			tenant = " --tenant " + e.Tenant
		}
		return fmt.Sprintf("this role requires %s, which the Azure CLI's token does not show: run `az login%s --claims-challenge %s`, then call again",
			need, tenant, base64.StdEncoding.EncodeToString([]byte(e.Graph.Claims)))
	}
	kind := e.Kind
	if kind == "" {
		kind = "in use"
	}
	return fmt.Sprintf("this role requires %s, and the credential %s cannot ask Entra for it: use credential: browser or devicecode with approvals.clientId "+
		"(mcp-gate then signs you in again for it), or supply a token that shows it", need, kind)
}

// asksClaims reports whether the credential can ask Entra for a token
// meeting a claims challenge: the interactive ones sign the user in again;
// on-behalf-of asks the exchange for the claims, which Entra grants when
// the caller's own sign-in met them.
func (c *Client) asksClaims() bool {
	return c.kind == "browser" || c.kind == "devicecode" || c.kind == mgpolicy.CredentialOnBehalfOf
}

// challengeToken gets a token meeting ge's claims challenge, declaring the
// cp1 capability (EnableCAE) as Entra requires of a client that handles
// claims challenges. Only the credentials that ask for claims can; for the
// others the error says what the user must do.
func (c *Client) challengeToken(ctx context.Context, ge *GraphError) (string, error) {
	if !c.asksClaims() {
		return "", &ChallengeError{Graph: ge, Kind: c.kind, Tenant: c.tenant(ctx)}
	}
	tok, err := c.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{GraphScope}, Claims: ge.Claims, EnableCAE: true})
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", &ChallengeError{Graph: ge, Kind: c.kind, Err: err}
	}
	return tok.Token, nil
}

// tenant is the configured tenant, else the tid of the credential's token.
func (c *Client) tenant(ctx context.Context) string {
	if c.tenantID != "" {
		return c.tenantID
	}
	tok, err := c.cred.GetToken(ctx, graphToken())
	if err != nil {
		return ""
	}
	cl, err := decodeClaims(tok.Token)
	if err != nil || !IsGUID(cl.TID) {
		return ""
	}
	return cl.TID
}

// bearerKey carries a token for one request in its context.
type bearerKey struct{}

func withBearer(ctx context.Context, token string) context.Context {
	return context.WithValue(ctx, bearerKey{}, token)
}

// stepUpPolicy runs after the bearer token policy and replaces its token
// with the one in the request's context, if any: the create POST retried
// with a token that meets a claims challenge.
type stepUpPolicy struct{}

func (stepUpPolicy) Do(req *policy.Request) (*http.Response, error) {
	if tok, ok := req.Raw().Context().Value(bearerKey{}).(string); ok && tok != "" {
		req.Raw().Header.Set("Authorization", "Bearer "+tok)
	}
	return req.Next()
}
