package proxy

import (
	"context"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/mark3labs/mcp-go/client"
	"github.com/mark3labs/mcp-go/mcp"
)

var (
	upstreamBinOnce sync.Once
	upstreamBin     string
	upstreamBinErr  error
)

// testUpstreamBin builds cmd/test-upstream once per test binary.
func testUpstreamBin(b *testing.B) string {
	upstreamBinOnce.Do(func() {
		dir, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}").Output()
		if err != nil {
			upstreamBinErr = err
			return
		}
		upstreamBin = filepath.Join(b.TempDir(), "test-upstream")
		cmd := exec.Command("go", "build", "-o", upstreamBin, "./cmd/test-upstream")
		cmd.Dir = string(dir[:len(dir)-1])
		if out, err := cmd.CombinedOutput(); err != nil {
			upstreamBinErr = err
			b.Logf("%s", out)
		}
	})
	if upstreamBinErr != nil {
		b.Fatal(upstreamBinErr)
	}
	return upstreamBin
}

// BenchmarkEchoCall measures one echo tools/call from an mcp-go client over
// stdio (2025-11-25): straight to the test upstream, and through the proxy
// (no middleware) in front of the same upstream. The difference is the
// proxy's cost per call, pipes included.
func BenchmarkEchoCall(b *testing.B) {
	bin := testUpstreamBin(b)
	legacy := client.WithProtocolVersion(mcp.ProtocolVersion20251125)
	req := mcp.CallToolRequest{}
	req.Params.Name = "echo"
	req.Params.Arguments = map[string]any{"text": "hello"}
	run := func(b *testing.B, c *client.Client) {
		ctx := context.Background()
		b.ResetTimer()
		for b.Loop() {
			if _, err := c.CallTool(ctx, req); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("direct", func(b *testing.B) {
		c, err := client.NewStdioMCPClientWithOptions(bin, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		defer c.Close()
		if err := c.Start(context.Background()); err != nil {
			b.Fatal(err)
		}
		init := mcp.InitializeRequest{}
		init.Params.ProtocolVersion = mcp.ProtocolVersion20251125
		if _, err := c.Initialize(context.Background(), init); err != nil {
			b.Fatal(err)
		}
		run(b, c)
	})
	b.Run("proxy", func(b *testing.B) {
		p, err := New(context.Background(), Options{Upstreams: []UpstreamConfig{{Name: "up", Command: []string{bin}}}})
		if err != nil {
			b.Fatal(err)
		}
		defer p.Close()
		run(b, stdioClient(b, p, legacy))
	})
}
