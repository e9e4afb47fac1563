package pim_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
	mgpolicy "github.com/mcp-gate/mcp-gate/internal/policy"
)

// jwt builds an unsigned token with the given claims (the client only
// decodes; Graph verifies).
func jwt(t *testing.T, claims map[string]any) string {
	t.Helper()
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(claims) + ".c2ln"
}

func TestTokenCredential(t *testing.T) {
	exp := time.Now().Add(time.Hour).Truncate(time.Second)
	good := jwt(t, map[string]any{"oid": alice, "exp": exp.Unix()})
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, file, env, wantErr string
	}{
		{name: "file", file: write("good", good+"\n")},
		{name: "env", env: good},
		{name: "file wins over env", file: write("good2", good), env: "garbage"},
		{name: "expired", file: write("old", jwt(t, map[string]any{"oid": alice, "exp": time.Now().Add(-time.Minute).Unix()})), wantErr: "expired"},
		{name: "no exp", file: write("noexp", jwt(t, map[string]any{"oid": alice})), wantErr: "no exp"},
		{name: "not a JWT", file: write("opaque", "opaque-token"), wantErr: "not a JWT"},
		{name: "empty file", file: write("empty", " \n"), wantErr: "empty"},
		{name: "missing file", file: filepath.Join(dir, "absent"), wantErr: "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv(pim.TokenEnv, tt.env)
			cred, err := pim.NewCredential("token", pim.CredentialOptions{TokenFile: tt.file})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{pim.GraphScope}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || tok.Token != good || !tok.ExpiresOn.Equal(exp) {
				t.Fatalf("token %q expiring %v, %v; want the good token expiring %v", tok.Token, tok.ExpiresOn, err, exp)
			}
		})
	}
	t.Run("a token per audience", func(t *testing.T) {
		armTok := jwt(t, map[string]any{"oid": alice, "aud": "https://management.azure.com", "exp": exp.Unix()})
		t.Setenv(pim.TokenEnv, "")
		t.Setenv(pim.ARMTokenEnv, "")
		cred, err := pim.NewCredential("token", pim.CredentialOptions{TokenFile: write("graph", good), ARMTokenFile: write("arm", armTok)})
		if err != nil {
			t.Fatal(err)
		}
		for scope, want := range map[string]string{pim.GraphScope: good, pim.ARMScope: armTok} {
			if tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{scope}}); err != nil || tok.Token != want {
				t.Errorf("%s: %q, %v", scope, tok.Token, err)
			}
		}
		// Only a Graph token: asking for ARM says where the ARM token goes.
		cred, err = pim.NewCredential("token", pim.CredentialOptions{TokenFile: write("graph", good)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{pim.ARMScope}}); err == nil || !strings.Contains(err.Error(), pim.ARMTokenEnv) {
			t.Fatalf("ARM token without one: %v, want an error naming %s", err, pim.ARMTokenEnv)
		}
		t.Setenv(pim.ARMTokenEnv, armTok)
		cred, err = pim.NewCredential("token", pim.CredentialOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{pim.ARMScope}}); err != nil || tok.Token != armTok {
			t.Fatalf("ARM token from %s: %q, %v", pim.ARMTokenEnv, tok.Token, err)
		}
	})
	t.Run("neither file nor env", func(t *testing.T) {
		t.Setenv(pim.TokenEnv, "")
		t.Setenv(pim.ARMTokenEnv, "")
		if _, err := pim.NewCredential("token", pim.CredentialOptions{}); err == nil || !strings.Contains(err.Error(), pim.TokenEnv) {
			t.Fatalf("err = %v, want one naming %s", err, pim.TokenEnv)
		}
	})
	t.Run("file refreshed on disk", func(t *testing.T) {
		p := write("rotating", jwt(t, map[string]any{"oid": alice, "exp": time.Now().Add(-time.Minute).Unix()}))
		cred, err := pim.NewCredential("token", pim.CredentialOptions{TokenFile: p})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{}); err == nil {
			t.Fatal("expired token accepted")
		}
		write("rotating", good)
		if tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{}); err != nil || tok.Token != good {
			t.Fatalf("after refresh: %q, %v", tok.Token, err)
		}
	})
}

func TestNewCredentialKinds(t *testing.T) {
	t.Setenv(pim.TokenEnv, "x.y.z")
	// environment and workloadidentity need AZURE_* variables to build.
	opts := pim.CredentialOptions{TenantID: "72f988bf-0000-4000-8000-000000000001", ClientID: "3b1a7c52-9d4e-4f60-8a1b-2c3d4e5f6a7b", Prompt: io.Discard}
	for _, kind := range []string{"default", "azurecli", "devicecode", "browser", "managedidentity", "token"} {
		if _, err := pim.NewCredential(kind, opts); err != nil {
			t.Errorf("NewCredential(%s): %v", kind, err)
		}
	}
	// The Azure CLI's app cannot be granted the PIM scopes, so an
	// interactive credential without the organisation's app is refused.
	for _, kind := range []string{"devicecode", "browser"} {
		if _, err := pim.NewCredential(kind, pim.CredentialOptions{Prompt: io.Discard}); !errors.Is(err, pim.ErrNoClientID) {
			t.Errorf("NewCredential(%s) without clientId: err = %v, want ErrNoClientID", kind, err)
		}
		if _, err := pim.NewCredential(kind, pim.CredentialOptions{ClientID: "mcp-gate", Prompt: io.Discard}); err == nil || !strings.Contains(err.Error(), "GUID") {
			t.Errorf("NewCredential(%s) with a clientId that is no GUID: err = %v", kind, err)
		}
	}
	if _, err := pim.NewCredential("kerberos", pim.CredentialOptions{}); err == nil || !strings.Contains(err.Error(), "azurecli") {
		t.Errorf("unknown kind: err = %v, want the list of kinds", err)
	}
}

func TestPrincipal(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	dir := t.TempDir()
	client := func(t *testing.T, oid, principalID string) (*pim.Client, error) {
		p := filepath.Join(dir, t.Name()[len("TestPrincipal/"):])
		if err := os.WriteFile(p, []byte(jwt(t, map[string]any{"oid": oid, "exp": exp})), 0o600); err != nil {
			t.Fatal(err)
		}
		cred, err := pim.NewCredential("token", pim.CredentialOptions{TokenFile: p})
		if err != nil {
			t.Fatal(err)
		}
		return pim.New(pim.Config{Credential: cred, PrincipalID: principalID})
	}
	t.Run("from token", func(t *testing.T) {
		c, err := client(t, alice, "")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Principal(context.Background()); err != nil || got != alice {
			t.Fatalf("Principal = %q, %v; want %s", got, err, alice)
		}
	})
	t.Run("configured wins", func(t *testing.T) {
		c, err := client(t, alice, bob)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := c.Principal(context.Background()); err != nil || got != bob {
			t.Fatalf("Principal = %q, %v; want %s", got, err, bob)
		}
	})
	t.Run("token oid not a GUID", func(t *testing.T) {
		c, err := client(t, "alice@contoso.com", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Principal(context.Background()); !errors.Is(err, pim.ErrInvalidPrincipal) {
			t.Fatalf("err = %v, want ErrInvalidPrincipal", err)
		}
	})
	t.Run("configured not a GUID", func(t *testing.T) {
		if _, err := client(t, alice, "alice"); !errors.Is(err, pim.ErrInvalidPrincipal) {
			t.Fatalf("New err = %v, want ErrInvalidPrincipal", err)
		}
	})
}

// The "token" credential end to end: a token minted by the emulator, read
// from MCP_GATE_GRAPH_TOKEN, names the principal and authorises the calls.
func TestTokenCredentialAgainstEmulator(t *testing.T) {
	srv, err := pimtest.NewServer(scenario()) // real clock: the token's exp is checked against it
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, srv.CACertPEM(), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv(pim.TokenEnv, srv.Token(alice))
	cred, err := pim.NewCredential("token", pim.CredentialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c, err := pim.New(pim.Config{GraphURL: srv.URL(), CAFile: caFile, Credential: cred, PollInterval: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	p, err := c.Principal(ctx)
	if err != nil || p != alice {
		t.Fatalf("Principal = %q, %v", p, err)
	}
	g, err := c.Activate(ctx, pim.Request{Principal: p, Target: mgpolicy.Target{Role: "Helpdesk Administrator"}, Duration: time.Hour}, nil)
	if err != nil || g.RoleDefinitionID != helpdeskID || g.End.Sub(g.Start) != time.Hour {
		t.Fatalf("grant %+v, %v", g, err)
	}
}

// TestAzureCLICredentialAdvice runs credential azurecli against fake `az`
// commands on PATH and checks the advice the user gets: installing the CLI
// when it is missing, signing in when it is there but gives no token.
func TestAzureCLICredentialAdvice(t *testing.T) {
	exp := time.Now().Add(time.Hour).Unix()
	token := jwt(t, map[string]any{"oid": alice, "exp": exp})
	tests := []struct {
		name    string
		az      string // the fake az script; "" for none on PATH
		wantErr error
		want    []string
		wantNot []string
		wantOID string
	}{
		{name: "not installed", wantErr: pim.ErrNoAzureCLI,
			want:    []string{"approvals.credential is azurecli, but the Azure CLI (`az`) is not installed or not on the PATH"},
			wantNot: []string{"set credential: azurecli", "az login --tenant"}},
		{name: "not signed in", az: "echo \"ERROR: Please run 'az login' to setup account.\" >&2; exit 1", wantErr: pim.ErrAuth,
			want:    []string{"run `az login --tenant <approvals.tenantId>`", "Please run 'az login' to setup account."},
			wantNot: []string{"not installed", "set credential: azurecli"}},
		{name: "signed in", az: fmt.Sprintf(`echo '{"accessToken": "%s", "expires_on": %d}'`, token, exp), wantOID: alice},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			if tt.az != "" {
				if err := os.WriteFile(filepath.Join(dir, "az"), []byte("#!/bin/sh\n"+tt.az+"\n"), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			t.Setenv("PATH", dir)
			cred, err := pim.NewCredential("azurecli", pim.CredentialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			c, err := pim.New(pim.Config{Credential: cred})
			if err != nil {
				t.Fatal(err)
			}
			oid, err := c.Principal(context.Background())
			if tt.wantErr == nil {
				if err != nil || oid != tt.wantOID {
					t.Fatalf("Principal = %q, %v; want %q", oid, err, tt.wantOID)
				}
				return
			}
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err = %v, want %v", err, tt.wantErr)
			}
			msg := pim.UserMessage(err)
			for _, w := range tt.want {
				if !strings.Contains(msg, w) {
					t.Errorf("UserMessage = %q, want it to contain %q", msg, w)
				}
			}
			for _, w := range tt.wantNot {
				if strings.Contains(msg, w) {
					t.Errorf("UserMessage = %q, want no %q", msg, w)
				}
			}
		})
	}
}
