// Package backoff computes exponential backoff delays with jitter, shared by
// the request retry loop and the waiters' polling schedule.
package backoff

import (
	"math/rand/v2"
	"time"
)

// Step returns min·2ⁿ capped at max: the n-th delay (from 0) of an
// exponential schedule.
func Step(min, max time.Duration, n int) time.Duration {
	d := min
	for i := 0; i < n && d < max; i++ {
		d *= 2
	}
	return clamp(d, min, max)
}

// Full returns a uniformly random duration in [0, d]: "full jitter", which
// spreads retries of many clients evenly.
func Full(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return rand.N(d + 1)
}

// Equal returns a uniformly random duration in [d/2, d]: "equal jitter",
// which spreads polls without ever polling at once.
func Equal(d time.Duration) time.Duration {
	if d <= 0 {
		return 0
	}
	return d/2 + Full(d-d/2)
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
