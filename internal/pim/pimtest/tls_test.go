package pimtest

import (
	"crypto/ecdsa"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"strings"
	"testing"
)

func TestTLSCertificate(t *testing.T) {
	e := startEmu(t, testScenario())
	if !strings.HasPrefix(e.URL(), "https://127.0.0.1:") || !strings.HasSuffix(e.URL(), "/v1.0") {
		t.Fatalf("URL() = %q", e.URL())
	}
	block, _ := pem.Decode(e.CACertPEM())
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("CACertPEM is not a PEM certificate")
	}
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil || !ca.IsCA {
		t.Fatalf("CA: %v, IsCA %v", err, ca != nil && ca.IsCA)
	}
	if _, ok := ca.PublicKey.(*ecdsa.PublicKey); !ok {
		t.Errorf("CA key algorithm %v, want ECDSA", ca.PublicKeyAlgorithm)
	}
	// The leaf is valid for every loopback name, under the CA only.
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(strings.TrimSuffix(e.URL(), "/v1.0"), "https://"))
	r := e.do(t, http.MethodGet, "https://localhost:"+port+"/v1.0"+eligibilityPath, e.Token(alice), nil)
	if r.status != 200 {
		t.Fatalf("via localhost: %d %s", r.status, r.raw)
	}
	if _, err := http.Get(e.URL() + eligibilityPath); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("a client without the CA connected: %v", err)
	}
}

func TestStartRules(t *testing.T) {
	s, err := NewServer(testScenario(), WithPlainHTTP())
	if err != nil {
		t.Fatal(err)
	}
	if s.URL() != "" || s.CACertPEM() != nil || s.Close() != nil {
		t.Fatal("an unstarted server has a URL, a CA or fails to close")
	}
	if err := s.Start("0.0.0.0:0"); err == nil || !strings.Contains(err.Error(), "loopback") {
		s.Close()
		t.Fatalf("plain http on 0.0.0.0: %v, want refused", err)
	}
	if err := s.Start("127.0.0.1:0"); err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start("127.0.0.1:0"); err == nil {
		t.Error("second Start succeeded")
	}
	if !strings.HasPrefix(s.URL(), "http://127.0.0.1:") {
		t.Errorf("URL() = %q", s.URL())
	}
}
