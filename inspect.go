package dimutex

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// Status describes the lock as one read saw it. It is for operators and
// tools: by the time it is used, the lock may have changed.
type Status struct {
	// Held reports a live lease: one that has not expired by server time.
	Held bool
	// Exists reports that the lock object exists. An object that exists but
	// is not Held is an expired lease, which the next Acquire takes over.
	Exists bool
	// Owner is the holder's description (WithOwner).
	Owner string
	// Token is the holder's fencing token.
	Token int64
	// Generation is the object's current generation: what ForceRelease
	// needs.
	Generation int64
	// Acquired is when the holder acquired the lock, and Updated when it
	// last wrote it, both by the server's clock.
	Acquired, Updated time.Time
	// TTL is the holder's TTL.
	TTL time.Duration
	// ServerTime is the server's clock at the read (to the second); zero if
	// the server did not say.
	ServerTime time.Time
	// ExpiresIn is how long the lease has left by server time: negative once
	// it has expired, and TTL plus a margin when ServerTime is unknown.
	ExpiresIn time.Duration
}

// Inspect reads the lock and reports who holds it. It never writes. It
// sends one read, and a second when the lock object is missing, to tell a
// free lock from a missing bucket, which is an error matching
// gcsjson.ErrNotFound.
func (m *Mutex) Inspect(ctx context.Context) (Status, error) {
	obj, err := m.client.Get(ctx, m.bucket, m.name)
	if gcsjson.IsNotFound(err) {
		if berr := m.client.CheckBucket(ctx, m.bucket); gcsjson.IsNotFound(berr) {
			return Status{}, fmt.Errorf("dimutex: inspect: bucket %q does not exist: %w", m.bucket, berr)
		}
		// Free; or, if the check failed otherwise (say, no permission to
		// list), most likely free.
		return Status{}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("dimutex: inspect: %w", err)
	}
	rec := readRecord(obj.Metadata)
	st := Status{
		Exists:     true,
		Owner:      rec.owner,
		Token:      rec.tokenOf(obj),
		Generation: obj.Generation,
		Acquired:   rec.acquired,
		Updated:    obj.Updated,
		TTL:        rec.ttl,
		ServerTime: obj.ServerTime,
	}
	if st.Acquired.IsZero() {
		st.Acquired = obj.TimeCreated
	}
	if st.TTL == 0 {
		st.TTL = m.ttl // not written by dimutex: judge it by our TTL
	}
	now := time.Now()
	st.ExpiresIn = expiresIn(obj, st.TTL, now, now)
	st.Held = st.ExpiresIn >= 0
	return st, nil
}

// ErrChanged means ForceRelease found the lock at another generation than
// the one it was told to delete, and deleted nothing.
var ErrChanged = errors.New("dimutex: the lock changed since it was read")

// ForceRelease deletes the lock object if, and only if, its generation is
// still generation (from Inspect), whoever holds it. It is an operator's way
// out for a lock whose holder is known to be dead; the holder, if alive,
// loses its lease at its next refresh. If the lock has changed since it was
// read it returns an error matching ErrChanged; if it is already gone, one
// matching gcsjson.ErrNotFound.
func (m *Mutex) ForceRelease(ctx context.Context, generation int64) error {
	if generation <= 0 {
		return fmt.Errorf("dimutex: force release: generation %d must be positive", generation)
	}
	err := m.client.Delete(ctx, m.bucket, m.name, generation)
	switch {
	case err == nil:
		m.log.Warn("dimutex: lock force-released", "generation", generation)
		return nil
	case gcsjson.IsNotFound(err) && mayHaveApplied(err):
		return nil // our delete landed; its answer was lost
	case gcsjson.IsPreconditionFailed(err):
		return fmt.Errorf("%w (its generation is no longer %d); nothing was deleted: %w", ErrChanged, generation, err)
	}
	return fmt.Errorf("dimutex: force release: %w", err)
}
