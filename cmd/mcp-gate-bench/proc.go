package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// rssKB reads one memory field of process pid, in KiB.
func rssKB(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("gate memory: %w", err)
	}
	defer f.Close()
	return statusKB(f, field)
}

// statusKB reads a "Field:   1234 kB" line from a /proc/PID/status file.
func statusKB(r io.Reader, field string) (int64, error) {
	sc := bufio.NewScanner(r)
	prefix := field + ":"
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), prefix)
		if !ok {
			continue
		}
		num, ok := strings.CutSuffix(strings.TrimSpace(rest), " kB")
		if !ok {
			return 0, fmt.Errorf("%s: unexpected unit in %q", field, rest)
		}
		return strconv.ParseInt(strings.TrimSpace(num), 10, 64)
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("%s: not found", field)
}

// cpuTime is the CPU time process pid has used so far: the sum over its
// threads of /proc/PID/task/TID/schedstat, which counts nanoseconds where
// /proc/PID/stat counts 10 ms ticks.
func cpuTime(pid int) (time.Duration, error) {
	stats, err := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/schedstat", pid))
	if err != nil || len(stats) == 0 {
		return 0, fmt.Errorf("gate CPU time: no threads of %d", pid)
	}
	var total time.Duration
	for _, path := range stats {
		data, err := os.ReadFile(path)
		if err != nil {
			return 0, fmt.Errorf("gate CPU time: %w", err)
		}
		ns, err := schedstatNS(string(data))
		if err != nil {
			return 0, fmt.Errorf("gate CPU time: %s: %w", path, err)
		}
		total += ns
	}
	return total, nil
}

// schedstatNS parses a schedstat line: time on CPU (ns), time waiting to
// run (ns), time slices.
func schedstatNS(line string) (time.Duration, error) {
	fields := strings.Fields(line)
	if len(fields) != 3 {
		return 0, fmt.Errorf("schedstat %q: want 3 fields", line)
	}
	ns, err := strconv.ParseInt(fields[0], 10, 64)
	return time.Duration(ns), err
}
