package loopback

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestHost(t *testing.T) {
	for _, tt := range []struct {
		host string
		want bool
	}{
		{"localhost", true},
		{"LOCALHOST:8080", true},
		{"127.0.0.1", true},
		{"127.1.2.3:9", true},
		{"[::1]:443", true},
		{"::1", true},
		{"localhost.example.com", false},
		{"10.0.0.1:80", false},
		{"example.com", false},
		{"", false},
	} {
		if got := Host(tt.host); got != tt.want {
			t.Errorf("Host(%q) = %v, want %v", tt.host, got, tt.want)
		}
	}
}

func TestRebound(t *testing.T) {
	for _, tt := range []struct {
		name, local, host string
		want              bool
	}{
		{"loopback listener, loopback name", "127.0.0.1:8080", "localhost:8080", false},
		{"loopback listener, foreign name", "127.0.0.1:8080", "evil.example:8080", true},
		{"public listener, any name", "10.0.0.5:8080", "gate.example.com", false},
		{"no listener address", "", "evil.example", false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.Host = tt.host
			if tt.local != "" {
				addr, err := net.ResolveTCPAddr("tcp", tt.local)
				if err != nil {
					t.Fatal(err)
				}
				r = r.WithContext(context.WithValue(r.Context(), http.LocalAddrContextKey, addr))
			}
			if got := Rebound(r); got != tt.want {
				t.Errorf("Rebound = %v, want %v", got, tt.want)
			}
		})
	}
}
