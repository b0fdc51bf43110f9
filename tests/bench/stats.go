package bench

import (
	"sort"
	"sync"
	"time"
)

// Latencies collects latency samples from many goroutines.
type Latencies struct {
	mu      sync.Mutex
	samples []time.Duration
}

// Add records one sample.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.mu.Unlock()
}

// Summary sorts the samples and returns their percentiles.
func (l *Latencies) Summary() LatencySummary {
	l.mu.Lock()
	s := make([]time.Duration, len(l.samples))
	copy(s, l.samples)
	l.mu.Unlock()
	return summarize(s)
}

// LatencySummary holds percentiles in milliseconds, as they go into JSON.
type LatencySummary struct {
	Count  int     `json:"count"`
	P50Ms  float64 `json:"p50_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func summarize(s []time.Duration) LatencySummary {
	if len(s) == 0 {
		return LatencySummary{}
	}
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return LatencySummary{
		Count:  len(s),
		P50Ms:  ms(percentile(s, 0.50)),
		P99Ms:  ms(percentile(s, 0.99)),
		P999Ms: ms(percentile(s, 0.999)),
		MaxMs:  ms(s[len(s)-1]),
	}
}

// percentile returns the nearest-rank percentile q (0..1] of sorted s.
func percentile(sorted []time.Duration, q float64) time.Duration {
	n := len(sorted)
	if n == 0 {
		return 0
	}
	rank := int(q*float64(n) + 0.999999)
	if rank < 1 {
		rank = 1
	}
	if rank > n {
		rank = n
	}
	return sorted[rank-1]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// mbps is bytes per elapsed time in MB/s, with MB = 10^6 bytes.
func mbps(bytes int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(bytes) / 1e6 / elapsed.Seconds()
}

// perSec is a count per elapsed second.
func perSec(n int64, elapsed time.Duration) float64 {
	if elapsed <= 0 {
		return 0
	}
	return float64(n) / elapsed.Seconds()
}
