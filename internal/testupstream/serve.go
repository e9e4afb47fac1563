package testupstream

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/mark3labs/mcp-go/server"
)

// stdioWorkers is mcp-go's maximum: a proxy's tests hold many sleeping calls
// at once, and the default of 5 would queue them behind each other.
const stdioWorkers = 100

// ServeStdio serves MCP on in/out until in ends or ctx is cancelled.
// mcp-go keeps the stdio session in a package variable, so a process serves
// at most one stdio session at a time.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	ss := server.NewStdioServer(s.mcp)
	server.WithWorkerPoolSize(stdioWorkers)(ss)
	server.WithQueueSize(1000)(ss)
	ss.SetErrorLogger(log.New(s.opts.Stderr, "test-upstream: ", 0))
	err := ss.Listen(ctx, in, out)
	if errors.Is(err, context.Canceled) || errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

// Endpoint paths served by ServeHTTP.
const (
	StreamablePath = "/mcp"
	SSEPath        = "/sse"
	MessagePath    = "/message"
)

// ServeHTTP serves Streamable HTTP at StreamablePath on ln, and with sse also
// the legacy SSE transport at SSEPath and MessagePath, until ctx is cancelled.
func (s *Server) ServeHTTP(ctx context.Context, ln net.Listener, sse bool) error {
	mux := http.NewServeMux()
	mux.Handle(StreamablePath, server.NewStreamableHTTPServer(s.mcp))
	if sse {
		ss := server.NewSSEServer(s.mcp, server.WithBaseURL("http://"+ln.Addr().String()))
		mux.Handle(SSEPath, ss)
		mux.Handle(MessagePath, ss)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	// Streams held open by clients (GET listeners, SSE) would keep Shutdown
	// waiting; the process is going away, so close what remains.
	if err := srv.Shutdown(shutdownCtx); err != nil {
		srv.Close()
	}
	return nil
}
