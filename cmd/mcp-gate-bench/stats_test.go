package main

import (
	"math"
	"strings"
	"testing"
	"time"
)

func ms(v ...int) []time.Duration {
	out := make([]time.Duration, len(v))
	for i, n := range v {
		out[i] = time.Duration(n) * time.Millisecond
	}
	return out
}

func TestPercentile(t *testing.T) {
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = time.Duration(i+1) * time.Millisecond
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one value", ms(7), 99, 7 * time.Millisecond},
		{"median of odd", ms(1, 2, 3, 4, 5), 50, 3 * time.Millisecond},
		{"median of even takes lower", ms(1, 2, 3, 4), 50, 2 * time.Millisecond},
		{"p99 of 100", hundred, 99, 99 * time.Millisecond},
		{"p100 is max", hundred, 100, 100 * time.Millisecond},
		{"p0 is min", hundred, 0, 1 * time.Millisecond},
		{"p99 of 10 is max", ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10), 99, 10 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := percentile(tt.sorted, tt.p); got != tt.want {
			t.Errorf("%s: percentile(p=%v) = %v, want %v", tt.name, tt.p, got, tt.want)
		}
	}
}

func TestSummarize(t *testing.T) {
	tests := []struct {
		name  string
		calls []time.Duration
		wall  time.Duration
		want  stats
	}{
		{"unsorted input", ms(5, 1, 4, 2, 3), time.Second, stats{P50: 3 * time.Millisecond, P99: 5 * time.Millisecond, Throughput: 5}},
		{"throughput over wall time", ms(1, 1, 1, 1), 500 * time.Millisecond, stats{P50: time.Millisecond, P99: time.Millisecond, Throughput: 8}},
		{"no wall time", ms(1), 0, stats{P50: time.Millisecond, P99: time.Millisecond}},
	}
	for _, tt := range tests {
		if got := summarize(tt.calls, tt.wall); got != tt.want {
			t.Errorf("%s: summarize = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestRatio(t *testing.T) {
	tests := []struct {
		subject, baseline, want float64
	}{
		{2, 1, 2},
		{75, 100, 0.75},
		{0, 5, 0},
	}
	for _, tt := range tests {
		if got := ratio(tt.subject, tt.baseline); got != tt.want {
			t.Errorf("ratio(%v, %v) = %v, want %v", tt.subject, tt.baseline, got, tt.want)
		}
	}
	if got := ratio(1, 0); !math.IsNaN(got) {
		t.Errorf("ratio(1, 0) = %v, want NaN", got)
	}
}

func TestStatusKB(t *testing.T) {
	const status = "Name:\tmcp-gate\nVmPeak:\t  800000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t    9876 kB\nThreads:\t7\n"
	tests := []struct {
		field   string
		want    int64
		wantErr bool
	}{
		{"VmHWM", 12345, false},
		{"VmRSS", 9876, false},
		{"VmSwap", 0, true},
		{"Threads", 0, true}, // no unit: not a size
	}
	for _, tt := range tests {
		got, err := statusKB(strings.NewReader(status), tt.field)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("statusKB(%s) = %d, %v; want %d, error %v", tt.field, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestSchedstatNS(t *testing.T) {
	tests := []struct {
		line    string
		want    time.Duration
		wantErr bool
	}{
		{"676735 1200 3\n", 676735, false},
		{"0 0 0", 0, false},
		{"12 34", 0, true},
		{"x 0 1", 0, true},
	}
	for _, tt := range tests {
		got, err := schedstatNS(tt.line)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("schedstatNS(%q) = %v, %v; want %v, error %v", tt.line, got, err, tt.want, tt.wantErr)
		}
	}
}
