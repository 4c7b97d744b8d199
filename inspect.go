package dimutex

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/dimutex/dimutex/gcsjson"
)

// Status describes a lock as one read saw it. It is for operators and
// tools: by the time it is used, the lock may have changed.
type Status struct {
	// Name is the lock object's name.
	Name string
	// Exists reports that an object exists at the name.
	Exists bool
	// NotALock reports an object that is not a dimutex lock: it has no
	// dimutex lease metadata. dimutex never overwrites or deletes it; of
	// the other fields only Name, Exists, Generation, Updated and
	// ServerTime are set.
	NotALock bool
	// Held reports a live lease: one that has not expired by server time.
	// A lock that Exists, is not Held and is not NotALock is an expired
	// lease, which the next Acquire takes over.
	Held bool
	// Owner is the holder's description (WithOwner).
	Owner string
	// Value is what the holder publishes (WithValue, Lease.Proclaim).
	Value string
	// Token is the holder's fencing token.
	Token int64
	// Generation is the object's current generation: what ForceRelease
	// needs.
	Generation int64
	// Acquired is when the holder acquired the lock, and Updated when it
	// last wrote it, both by the server's clock.
	Acquired, Updated time.Time
	// TTL is the holder's TTL, by which the lease is judged.
	TTL time.Duration
	// TTLCapped reports that the stored TTL was missing, unreadable or
	// above MaxTTL, so TTL is MaxTTL.
	TTLCapped bool
	// Slots is the size of the semaphore this is a slot of; 0 for a lock.
	Slots int
	// ServerTime is the server's clock at the read (to the second); zero if
	// the server did not say.
	ServerTime time.Time
	// ExpiresIn is how long the lease has left by server time, until a
	// waiter may take it over: Updated + TTL + 1 s (the safety margin for
	// clock rates) - ServerTime. It is negative once the lease has expired,
	// and TTL plus the margin when ServerTime is unknown.
	ExpiresIn time.Duration
}

// Margin is the safety margin that waiters add to a holder's TTL before
// they take its lock over, so that a holder whose clock runs a little slow
// has stopped trusting its lease by then. Status.ExpiresIn includes it.
const Margin = time.Second

// status returns the Status of obj, read now.
func (s *settings) status(obj *gcsjson.Object, now time.Time) Status {
	st := Status{Name: obj.Name, Exists: true, Generation: obj.Generation, Updated: obj.Updated, ServerTime: obj.ServerTime}
	rec := readRecord(obj.Metadata)
	if !rec.isLock() {
		st.NotALock = true
		return st
	}
	st.Owner, st.Value, st.Slots = rec.owner, rec.value, rec.slots
	st.Token = rec.tokenOf(obj)
	st.Acquired = rec.acquiredAt(obj)
	st.TTL, st.TTLCapped = rec.ttl, rec.ttlCapped
	st.ExpiresIn = expiresIn(obj, st.TTL, s.margin, now, now)
	st.Held = st.ExpiresIn >= 0
	return st
}

// Inspect reads the lock and reports who holds it. It never writes. It
// sends one read, and a second when the lock object is missing, to tell a
// free lock from a missing bucket, which is an error matching
// gcsjson.ErrNotFound.
func (m *Mutex) Inspect(ctx context.Context) (Status, error) {
	lk := m.lk
	obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
	if gcsjson.IsNotFound(err) {
		if berr := lk.client.CheckBucket(ctx, lk.bucket); gcsjson.IsNotFound(berr) {
			return Status{}, fmt.Errorf("dimutex: inspect: bucket %q does not exist: %w", lk.bucket, berr)
		}
		// Free; or, if the check failed otherwise (say, no permission to
		// list), most likely free.
		return Status{Name: lk.name}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("dimutex: inspect: %w", err)
	}
	return lk.status(obj, time.Now()), nil
}

// List reads every object whose name starts with prefix in bucket, with one
// objects-list request per 1,000 objects, and returns a Status for each,
// sorted by name: locks, semaphore slots, and objects that are not locks
// (NotALock). It never writes. It takes the options of NewGCS, of which
// those about requests and credentials matter. A missing bucket is an
// error matching gcsjson.ErrNotFound.
//
// Listing is a Class A operation on GCS, priced like a write.
func List(ctx context.Context, bucket, prefix string, opts ...Option) ([]Status, error) {
	s, err := newSettings(bucket, opts)
	if err != nil {
		return nil, err
	}
	// A prefix is the start of an object name: no name could match these.
	switch {
	case len(prefix) > gcsjson.MaxObjectNameBytes:
		return nil, &ConfigError{Option: "List", Value: shorten(prefix), Reason: fmt.Sprintf("the prefix is %d bytes; object names have at most %d", len(prefix), gcsjson.MaxObjectNameBytes)}
	case !utf8.ValidString(prefix):
		return nil, &ConfigError{Option: "List", Value: shorten(prefix), Reason: "the prefix must be valid UTF-8"}
	}
	objs, err := s.client.List(ctx, bucket, prefix)
	if err != nil {
		return nil, fmt.Errorf("dimutex: list: %w", err)
	}
	now := time.Now()
	sts := make([]Status, len(objs))
	for i, obj := range objs {
		sts[i] = s.status(obj, now)
	}
	return sts, nil
}

// ErrChanged means ForceRelease found the lock at another generation than
// the one it was told to delete, and deleted nothing.
var ErrChanged = errors.New("dimutex: the lock changed since it was read")

// ForceRelease deletes the lock object if, and only if, it is a dimutex
// lock and its generation is still generation (from Inspect), whoever holds
// it. It is an operator's way out for a lock whose holder is known to be
// dead; the holder, if alive, loses its lease at its next refresh.
//
// It reads the lock first, so that an object that is not a lock is never
// deleted (ErrNotALock). If the lock has changed since it was read it
// returns an error matching ErrChanged and deletes nothing; if it is
// already gone, one matching gcsjson.ErrNotFound. A delete whose answer was
// lost counts as done when the holder at generation is gone afterwards.
func (m *Mutex) ForceRelease(ctx context.Context, generation int64) error {
	lk := m.lk
	if generation <= 0 {
		return &ConfigError{Option: "ForceRelease", Value: strconv.FormatInt(generation, 10), Reason: "the generation must be positive (take it from Inspect)"}
	}
	obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
	if err != nil {
		return fmt.Errorf("dimutex: force release: %w", err)
	}
	rec := readRecord(obj.Metadata)
	switch {
	case !rec.isLock():
		return lk.notALock(obj)
	case obj.Generation != generation:
		return fmt.Errorf("%w (its generation is %d, not %d); nothing was deleted", ErrChanged, obj.Generation, generation)
	}
	err = lk.client.Delete(ctx, lk.bucket, lk.name, generation)
	switch {
	case err == nil:
		lk.log.Warn("dimutex: lock force-released", "generation", generation, "owner", rec.owner)
		return nil
	case gcsjson.IsNotFound(err) && mayHaveApplied(err):
		return nil // our delete landed; its answer was lost
	case gcsjson.IsPreconditionFailed(err) && mayHaveApplied(err):
		// Our delete may have landed before someone acquired: it did if
		// the lease we meant to delete is gone.
		now, gerr := lk.client.Get(ctx, lk.bucket, lk.name)
		switch {
		case gcsjson.IsNotFound(gerr):
			return nil
		case gerr != nil:
			return fmt.Errorf("dimutex: force release: %w (then, reading the lock: %w)", err, gerr)
		case readRecord(now.Metadata).lease != rec.lease:
			return nil
		}
		fallthrough
	case gcsjson.IsPreconditionFailed(err):
		return fmt.Errorf("%w (its generation is no longer %d); nothing was deleted: %w", ErrChanged, generation, err)
	}
	return fmt.Errorf("dimutex: force release: %w", err)
}
