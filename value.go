package dimutex

import (
	"context"
	"fmt"
)

// Proclaim changes the value that the lease publishes, with one
// compare-and-swap write that also refreshes the lease. Followers see it in
// Election.Leader and Election.Observe, operators in Inspect and `dimutex
// status`. The value is at most MaxValueBytes of UTF-8; a bad one is
// refused before any request. Like Refresh, Proclaim waits for the lease's
// other writes and retries transient failures until ctx ends or the
// deadline passes; it returns an error matching ErrLost if the lease is
// gone, and one matching ErrAlreadyReleased once Release has been called.
func (l *Lease) Proclaim(ctx context.Context, value string) error {
	if err := checkValue("Proclaim", value); err != nil {
		return err
	}
	if err := l.lockWrites(ctx); err != nil {
		return fmt.Errorf("dimutex: proclaim: %w", err)
	}
	defer l.unlockWrites()
	if err := l.writable("proclaim"); err != nil {
		return err
	}
	rec := l.rec
	rec.value = value
	return l.refreshLocked(withToken(ctx, l.lk, l.token), "proclaim", rec, false)
}

// Value returns the value the lease publishes: the last one written, by
// WithValue, Election.Campaign or Proclaim.
func (l *Lease) Value() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.value
}
