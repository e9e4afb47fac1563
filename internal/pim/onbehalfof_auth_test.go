package pim_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/pim"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

// selfSigned makes a certificate and writes it with its key as one PEM
// file, the shape MCP_GATE_CLIENT_CERTIFICATE_PATH takes.
func selfSigned(t *testing.T) (*x509.Certificate, string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "mcp-gate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	data = append(data, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	path := filepath.Join(t.TempDir(), "gate.pem")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, path
}

func writeFile(t *testing.T, name, data string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// The gate's credential is whichever one of the secret, the certificate
// and the federated token file is configured; none, several, or one that
// cannot be read is an error that names what to set.
func TestClientAuthFromEnv(t *testing.T) {
	_, certPath := selfSigned(t)
	tokenFile := writeFile(t, "token", "eyJ.federated.token\n")
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    string // "secret", "cert", "federated"
		wantErr string
	}{
		{name: "none", wantErr: "set one of AZURE_CLIENT_SECRET"},
		{name: "secret", env: map[string]string{pim.ClientSecretEnv: "s3cret"}, want: "secret"},
		{name: "certificate", env: map[string]string{pim.ClientCertificatePathEnv: certPath}, want: "cert"},
		{name: "federated", env: map[string]string{pim.FederatedTokenFileEnv: tokenFile}, want: "federated"},
		{name: "secret and certificate", env: map[string]string{pim.ClientSecretEnv: "s", pim.ClientCertificatePathEnv: certPath},
			wantErr: "AZURE_CLIENT_SECRET and MCP_GATE_CLIENT_CERTIFICATE_PATH are all set"},
		{name: "all three", env: map[string]string{pim.ClientSecretEnv: "s", pim.ClientCertificatePathEnv: certPath, pim.FederatedTokenFileEnv: tokenFile},
			wantErr: "AZURE_CLIENT_SECRET and MCP_GATE_CLIENT_CERTIFICATE_PATH and AZURE_FEDERATED_TOKEN_FILE are all set"},
		{name: "certificate missing", env: map[string]string{pim.ClientCertificatePathEnv: filepath.Join(t.TempDir(), "nope.pem")}, wantErr: "no such file"},
		{name: "certificate not a certificate", env: map[string]string{pim.ClientCertificatePathEnv: writeFile(t, "x.pem", "not pem")}, wantErr: "the certificate"},
		{name: "federated token file empty", env: map[string]string{pim.FederatedTokenFileEnv: writeFile(t, "empty", "\n")}, wantErr: "is empty"},
		{name: "federated token file missing", env: map[string]string{pim.FederatedTokenFileEnv: filepath.Join(t.TempDir(), "nope")}, wantErr: "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, err := pim.ClientAuthFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want it to contain %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got := map[bool]string{a.Secret != "": "secret", a.Key != nil && len(a.Certs) == 1: "cert", a.AssertionFile != "": "federated"}[true]
			if got != tc.want {
				t.Fatalf("ClientAuth = %+v, want %s", a, tc.want)
			}
		})
	}
}

// The exchange authenticates the gate with a certificate or a federated
// token as Entra checks them: an unregistered certificate or a token of
// another subject is refused. The federated token file is read at each
// exchange, so a rotated token is the one used.
func TestOnBehalfOfClientAssertions(t *testing.T) {
	const subject = "system:serviceaccount:mcp-gate:mcp-gate"
	registered, registeredPath := selfSigned(t)
	_, strangerPath := selfSigned(t)
	for _, tc := range []struct {
		name   string
		env    func(e *env) map[string]string
		rotate func(e *env, env map[string]string) // before the second user's exchange
		ok     [2]bool
	}{
		{name: "registered certificate", env: func(*env) map[string]string { return map[string]string{pim.ClientCertificatePathEnv: registeredPath} }, ok: [2]bool{true, true}},
		{name: "unregistered certificate", env: func(*env) map[string]string { return map[string]string{pim.ClientCertificatePathEnv: strangerPath} }},
		{name: "federated token", env: func(e *env) map[string]string {
			return map[string]string{pim.FederatedTokenFileEnv: writeFile(t, "token", e.srv.FederatedToken(subject, time.Hour))}
		}, ok: [2]bool{true, true}},
		{name: "federated token of another subject", env: func(e *env) map[string]string {
			return map[string]string{pim.FederatedTokenFileEnv: writeFile(t, "token", e.srv.FederatedToken("system:serviceaccount:x:y", time.Hour))}
		}},
		{name: "federated token rotated to a wrong one", env: func(e *env) map[string]string {
			return map[string]string{pim.FederatedTokenFileEnv: writeFile(t, "token", e.srv.FederatedToken(subject, time.Hour))}
		}, rotate: func(e *env, env map[string]string) {
			if err := os.WriteFile(env[pim.FederatedTokenFileEnv], []byte(e.srv.FederatedToken("system:serviceaccount:x:y", time.Hour)), 0o600); err != nil {
				t.Fatal(err)
			}
		}, ok: [2]bool{true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := scenario()
			sc.Eligibilities = append(sc.Eligibilities, pimtest.Eligibility{Principal: bob, Role: helpdeskID})
			e := start(t, sc)
			e.srv.RegisterApp(pimtest.App{ClientID: gateClientID, IdentifierURI: gateAppURI,
				Certificates: []*x509.Certificate{registered}, FederatedSubject: subject})
			env := tc.env(e)
			auth, err := pim.ClientAuthFromEnv(func(k string) string { return env[k] })
			if err != nil {
				t.Fatal(err)
			}
			o, err := pim.NewOnBehalfOf(pim.OnBehalfOfConfig{
				TenantID: e.srv.TenantID(), ClientID: gateClientID, Auth: auth,
				Authority: e.srv.Authority(), AuthorityCAFile: e.caFile,
				Client: pim.Config{GraphURL: e.srv.URL(), CAFile: e.caFile, PollInterval: time.Second, Clock: e.clk, Jitter: func() float64 { return 0.5 }},
			})
			if err != nil {
				t.Fatal(err)
			}
			for i, u := range []string{alice, bob} {
				if i == 1 && tc.rotate != nil {
					tc.rotate(e, env)
				}
				if err := o.Remember(u, e.srv.UserToken(u, gateAppURI)); err != nil {
					t.Fatal(err)
				}
				r := req(helpdeskID)
				r.Principal = u
				var g pim.Grant
				e.run(func() { g, err = o.Activate(context.Background(), r, nil) })
				if tc.ok[i] {
					if err != nil || g.RequestID == "" {
						t.Fatalf("%s: Activate = %+v, %v", u, g, err)
					}
				} else if !errors.Is(err, pim.ErrAuth) {
					t.Fatalf("%s: Activate = %v, want ErrAuth", u, err)
				}
			}
		})
	}
}

// NewOnBehalfOf takes exactly one credential of the gate.
func TestNewOnBehalfOfNeedsOneCredential(t *testing.T) {
	cert, path := selfSigned(t)
	certAuth, err := pim.ClientAuthFromEnv(func(k string) string { return map[string]string{pim.ClientCertificatePathEnv: path}[k] })
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		auth pim.ClientAuth
		ok   bool
	}{
		{"none", pim.ClientAuth{}, false},
		{"secret", pim.ClientAuth{Secret: "s"}, true},
		{"certificate", certAuth, true},
		{"federated", pim.ClientAuth{AssertionFile: "/var/run/secrets/azure/tokens/azure-identity-token"}, true},
		{"secret and federated", pim.ClientAuth{Secret: "s", AssertionFile: "/t"}, false},
		{"certificate without key", pim.ClientAuth{Certs: []*x509.Certificate{cert}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := pim.NewOnBehalfOf(pim.OnBehalfOfConfig{TenantID: "11111111-2222-4333-8444-555555555555", ClientID: gateClientID, Auth: tc.auth})
			if (err == nil) != tc.ok {
				t.Fatalf("NewOnBehalfOf = %v, want ok %v", err, tc.ok)
			}
		})
	}
}
