// Command pim-emulator serves a local stand-in for the Microsoft Graph PIM
// endpoints from a scenario file, for the demo and for trying mcp-gate
// without an Entra tenant. See docs/pim-emulator.md.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/mcp-gate/mcp-gate/internal/cmdline"
	"github.com/mcp-gate/mcp-gate/internal/pim/pimtest"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(cmdline.Code("pim-emulator", os.Stderr, err))
}

const usage = `Usage: pim-emulator --scenario FILE [flags]

Serves a local stand-in for the Microsoft Graph PIM endpoints from a
scenario file, over HTTPS with its own CA (or plain HTTP on loopback), for
the demo and for trying mcp-gate without an Entra tenant. See
docs/pim-emulator.md.
`

// run serves until ctx ends. It is main with its environment passed in, so
// tests drive it in-process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("pim-emulator", flag.ContinueOnError)
	scenario := fs.String("scenario", "", "scenario YAML `file` (required)")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	caFile := fs.String("ca-file", "", "write the CA certificate (PEM) that signs the TLS certificate here")
	plain := fs.Bool("plain-http", false, "serve plain http (loopback addresses only)")
	urlFile := fs.String("url-file", "", "write the Graph base URL here")
	verbose := fs.Bool("v", false, "log every request to stderr")
	if err := cmdline.Parse(fs, args, usage, stdout, stderr); err != nil {
		return err
	}
	switch {
	case *scenario == "":
		return cmdline.UsageError(stderr, fs, usage, "pim-emulator: --scenario is required")
	case fs.NArg() > 0:
		return cmdline.UsageError(stderr, fs, usage, fmt.Sprintf("pim-emulator: unexpected argument %q", fs.Arg(0)))
	case *plain && *caFile != "":
		return cmdline.UsageError(stderr, fs, usage, "pim-emulator: --ca-file has no meaning with --plain-http")
	}
	sc, err := pimtest.LoadScenario(*scenario)
	if err != nil {
		return err
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	opts := []pimtest.Option{pimtest.WithLogger(slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))}
	if *plain {
		opts = append(opts, pimtest.WithPlainHTTP())
	}
	srv, err := pimtest.NewServer(sc, opts...)
	if err != nil {
		return err
	}
	if err := srv.Start(*listen); err != nil {
		return err
	}
	defer srv.Close()
	if *caFile != "" {
		if err := os.WriteFile(*caFile, srv.CACertPEM(), 0o644); err != nil {
			return fmt.Errorf("write CA file: %w", err)
		}
	}
	if *urlFile != "" {
		if err := os.WriteFile(*urlFile, []byte(srv.URL()+"\n"), 0o644); err != nil {
			return fmt.Errorf("write URL file: %w", err)
		}
	}
	fmt.Fprintf(stdout, "PIM emulator listening on %s\n", srv.URL())
	<-ctx.Done()
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return srv.Shutdown(shutdownCtx)
}
