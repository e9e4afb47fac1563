package cmdline

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
)

// CPUProfileEnv names the environment variable that makes a command of
// this repository write a CPU profile of its whole run to the file it
// names: how mcp-gate-bench -cpuprofile profiles the processes it measures
// without a flag that every user would see.
const CPUProfileEnv = "MCP_GATE_CPUPROFILE"

// StartCPUProfile starts the CPU profile CPUProfileEnv asks for, if any;
// stop writes it out and must run before the process exits. A profile
// that cannot start is reported to stderr and the command runs without it.
func StartCPUProfile(stderr io.Writer) (stop func()) {
	path := os.Getenv(CPUProfileEnv)
	if path == "" {
		return func() {}
	}
	f, err := os.Create(path)
	if err == nil {
		if err = pprof.StartCPUProfile(f); err != nil {
			f.Close()
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%s: no CPU profile: %v\n", CPUProfileEnv, err)
		return func() {}
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			fmt.Fprintf(stderr, "%s: CPU profile %s: %v\n", CPUProfileEnv, path, err)
		}
	}
}
