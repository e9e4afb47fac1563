package main

import (
	"math"
	"slices"
	"time"
)

// stats summarises one measured run.
type stats struct {
	P50, P99   time.Duration
	Throughput float64 // calls per second of wall time
}

// summarize computes the latency percentiles of calls and the throughput of
// len(calls) calls completed in wall. It sorts calls in place.
func summarize(calls []time.Duration, wall time.Duration) stats {
	slices.Sort(calls)
	s := stats{P50: percentile(calls, 50), P99: percentile(calls, 99)}
	if wall > 0 {
		s.Throughput = float64(len(calls)) / wall.Seconds()
	}
	return s
}

// percentile returns the nearest-rank p-th percentile of sorted: the
// smallest value with at least p% of the values at or below it.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

// ratio is subject/baseline, NaN when there is no baseline to compare with.
func ratio(subject, baseline float64) float64 {
	if baseline == 0 {
		return math.NaN()
	}
	return subject / baseline
}
