// Package backoff computes exponential backoff delays with jitter, shared by
// the request retry loop and the waiters' polling schedule.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Jitter returns a uniformly random duration in [0, d] for d > 0. Tests
// that must be reproducible pass a seeded one; nil means math/rand/v2.
type Jitter func(d time.Duration) time.Duration

// Uniform is the default Jitter, drawing from math/rand/v2.
func Uniform(d time.Duration) time.Duration { return rand.N(d + 1) }

// Step returns min·2ⁿ capped at max: the n-th delay (from 0) of an
// exponential schedule.
func Step(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return clamp(d, min, max)
}

// Full returns a random duration in [0, d]: "full jitter", which spreads
// retries of many clients evenly.
func Full(j Jitter, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	if j == nil {
		j = Uniform
	}
	return clamp(j(d), 0, d)
}

// Equal returns a random duration in [d/2, d]: "equal jitter", which
// spreads polls without ever polling at once.
func Equal(j Jitter, d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + Full(j, d-d/2)
}

func clamp(d, lo, hi time.Duration) time.Duration {
	if d < lo {
		d = lo
	}
	if d > hi {
		d = hi
	}
	return d
}
