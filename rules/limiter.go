package rules

import (
	"sync"
	"time"
)

// maxBuckets is the number of keyed buckets after which a limiter forgets
// the buckets that have refilled (they are equivalent to new ones).
const maxBuckets = 4096

// limiter is a token bucket, or one bucket per key (sender or room). A
// bucket holds up to burst tokens and gains N tokens per window; each
// allowed event takes one.
type limiter struct {
	rate  Rate
	burst float64
	// perSec is the refill speed in tokens per second.
	perSec float64

	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens  float64
	last    time.Time
	refused bool // the last call was refused
}

// newLimiter returns nil for the zero Rate (no limit).
func newLimiter(r Rate, burst int) *limiter {
	if r.IsZero() {
		return nil
	}
	if burst <= 0 {
		burst = r.N
	}
	return &limiter{
		rate:    r,
		burst:   float64(burst),
		perSec:  float64(r.N) / r.Per.Seconds(),
		buckets: make(map[string]*bucket),
	}
}

// allow takes a token from key's bucket at now, reporting whether there was
// one. A nil limiter allows everything.
func (l *limiter) allow(key string, now time.Time) bool {
	ok, _ := l.take(key, now)
	return ok
}

// take is allow that also tells whether this refusal is the first since
// key was last allowed (to log a limit once, not for every message).
func (l *limiter) take(key string, now time.Time) (ok, first bool) {
	if l == nil {
		return true, false
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[key]
	if !ok {
		if len(l.buckets) >= maxBuckets {
			l.sweep(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
	}
	if dt := now.Sub(b.last).Seconds(); dt > 0 {
		b.tokens = min(l.burst, b.tokens+dt*l.perSec)
		b.last = now
	}
	if b.tokens < 1 {
		first = !b.refused
		b.refused = true
		return false, first
	}
	b.tokens--
	b.refused = false
	return true, false
}

// sweep forgets the buckets that are full again at now. The caller holds mu.
func (l *limiter) sweep(now time.Time) {
	for k, b := range l.buckets {
		if b.tokens+now.Sub(b.last).Seconds()*l.perSec >= l.burst {
			delete(l.buckets, k)
		}
	}
}

// same reports whether l and o limit alike, so that o's state may be kept.
func (l *limiter) same(r Rate, burst int) bool {
	if l == nil {
		return false
	}
	if burst <= 0 {
		burst = r.N
	}
	return l.rate == r && l.burst == float64(burst)
}
