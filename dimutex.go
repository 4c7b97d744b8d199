// Package dimutex is a distributed mutex whose state lives in one Google
// Cloud Storage object. Any number of processes, on any number of machines,
// that name the same bucket and object share one lock. On the same
// protocol it offers leader election (Election), where the leader publishes
// a value for followers, and a semaphore of N slots (Semaphore).
//
// A holder owns a Lease for a TTL and extends it in the background; if it
// crashes, the lock is free again once the TTL has passed by the server's
// clock. Every write is a compare-and-swap on the object's generation, so
// acquiring, taking over an expired lock, refreshing and releasing are each
// atomic, and each can be retried safely. Waiters poll with reads only and
// never spend the holder's budget of about one write per second per object.
//
// The lease's Token, the generation of the write that acquired it, is a
// fencing token: pass it to the resources the lock protects so that they can
// refuse a holder whose lease has ended.
//
// Only objects that carry dimutex's lease metadata are ever overwritten or
// deleted: anything else at a lock's name gives ErrNotALock.
//
// The package speaks the GCS JSON API through its own small client
// (package gcsjson); it does not use the official SDK. Set
// STORAGE_EMULATOR_HOST to use an emulator such as fake-gcs-server or
// storage-testbench, or test against package dimutextest, an in-memory GCS.
package dimutex

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"
)

// Sentinel errors, matched with errors.Is.
var (
	// ErrAlreadyAcquired means a live lease is held by someone else (for a
	// Semaphore: every slot is).
	ErrAlreadyAcquired = errors.New("dimutex: already acquired")
	// ErrAlreadyReleased means the lease was already released.
	ErrAlreadyReleased = errors.New("dimutex: already released")
	// ErrLost means the lease ended involuntarily while it was held: it was
	// not refreshed before its deadline, or someone else took, overwrote or
	// deleted the lock. Work done under it may have overlapped another
	// holder's. It is never reported because a release failed after the
	// work ended: that is ErrNotReleased.
	ErrLost = errors.New("dimutex: lease lost")
	// ErrNotReleased means Release could not delete the lock: GCS answered
	// 503 until the lease's deadline, say, or refused the delete for good
	// (a 403; the error then wraps GCS's). The lock is left
	// to expire at GCS, about TTL + 1 s after the lease's last write. The
	// work done before Release ran under a valid lease.
	ErrNotReleased = errors.New("dimutex: lock not released; it expires after its TTL")
	// ErrNotALock means the object at the lock's name is not a dimutex
	// lock: it has no dimutex lease metadata. dimutex never overwrites or
	// deletes such an object. The error is a *NotALockError.
	ErrNotALock = errors.New("dimutex: not a dimutex lock")
	// ErrInvalidConfig matches every error that a constructor returns for
	// bad input; the error itself names the bad value.
	ErrInvalidConfig = errors.New("dimutex: invalid configuration")
)

// ConfigError reports a bad argument or option given to a constructor.
type ConfigError struct {
	// Option names what was bad: "bucket", "name", "size", or an option
	// such as "WithTTL" or "STORAGE_EMULATOR_HOST".
	Option string
	// Value is the bad value as text, quoted and shortened if long.
	Value string
	// Reason says what is wrong with it.
	Reason string
	// Err is the underlying error, if any.
	Err error
}

// Error names the option, the bad value and what is wrong with it.
func (e *ConfigError) Error() string {
	if e.Err != nil {
		return "dimutex: " + e.Err.Error()
	}
	return fmt.Sprintf("dimutex: %s(%s): %s", e.Option, e.Value, e.Reason)
}

// Is makes errors.Is(err, ErrInvalidConfig) true.
func (e *ConfigError) Is(target error) bool { return target == ErrInvalidConfig }

// Unwrap returns the underlying error.
func (e *ConfigError) Unwrap() error { return e.Err }

// NotALockError reports an object at a lock's name that is not a dimutex
// lock. It matches ErrNotALock.
type NotALockError struct {
	// Lock is the object, "gs://bucket/name".
	Lock string
	// Generation, Size and ContentType describe what is there.
	Generation  int64
	Size        int64
	ContentType string
}

// Error names the object and what it holds.
func (e *NotALockError) Error() string {
	ct := e.ContentType
	if ct == "" {
		ct = "no content type"
	}
	return fmt.Sprintf("dimutex: %s is not a dimutex lock: it holds an object of %d bytes (%s, generation %d) without dimutex's lease metadata; dimutex never overwrites or deletes it, so use another name for the lock",
		e.Lock, e.Size, ct, e.Generation)
}

// Is makes errors.Is(err, ErrNotALock) true.
func (e *NotALockError) Is(target error) bool { return target == ErrNotALock }

// Limits and defaults.
const (
	// DefaultTTL is how long a lease lives unless refreshed.
	DefaultTTL = 60 * time.Second
	// MinTTL and MaxTTL bound the TTL. Below a second the server's Date
	// header, which counts whole seconds, cannot time a lease; above a day
	// a crashed holder would block everyone for too long. A TTL stored in
	// a lock that is missing, unreadable or above MaxTTL is read as MaxTTL.
	MinTTL = time.Second
	MaxTTL = 24 * time.Hour
	// DefaultAttemptTimeout bounds each request.
	DefaultAttemptTimeout = 10 * time.Second
	// DefaultMinBackoff and DefaultMaxBackoff bound both retry delays and
	// the waiters' polling interval.
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 5 * time.Second
	// MaxOwnerBytes bounds the length of an owner description.
	MaxOwnerBytes = 512
	// MaxValueBytes bounds the length of a published value (WithValue,
	// Election.Campaign, Lease.Proclaim).
	MaxValueBytes = 1024
)

// Mutex is a lock named by a bucket and an object name. It holds
// configuration and a client, not lease state, and is safe for concurrent
// use: each successful Acquire returns its own Lease.
type Mutex struct {
	lk *lock
}

// NewGCS returns a Mutex on the object name in bucket. It checks every
// argument and reads STORAGE_EMULATOR_HOST, but sends no request;
// credentials are looked up at the first request. Bad input gives an error
// matching ErrInvalidConfig that names the bad value.
func NewGCS(bucket, name string, opts ...Option) (*Mutex, error) {
	s, err := newSettings(bucket, opts)
	if err != nil {
		return nil, err
	}
	lk, err := s.newLock(name, 0)
	if err != nil {
		return nil, err
	}
	return &Mutex{lk: lk}, nil
}

// DefaultOwner returns the owner a Mutex describes its holder by unless
// WithOwner says otherwise: "hostname/pid".
func DefaultOwner() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown-host"
	}
	return fmt.Sprintf("%s/%d", host, os.Getpid())
}

// String returns the lock's location, "gs://bucket/name".
func (m *Mutex) String() string { return m.lk.ref }

// Acquire waits until it holds the lock and returns its Lease, or returns
// an error when ctx ends or a request fails for good (a transient failure is
// retried). While another holder's lease is live it polls with reads only,
// at most every backoff interval and no later than that lease's expiry; an
// expired lease is taken over atomically. An object at the lock's name that
// is not a dimutex lock gives an error matching ErrNotALock.
func (m *Mutex) Acquire(ctx context.Context) (*Lease, error) {
	return m.lk.acquire(ctx, true, m.lk.value)
}

// TryAcquire makes one attempt to take the lock: it creates the lock, or
// takes over an expired one. If a live lease is held by someone else it
// returns an error matching ErrAlreadyAcquired that names the holder.
// Transient failures are retried until ctx ends.
func (m *Mutex) TryAcquire(ctx context.Context) (*Lease, error) {
	return m.lk.acquire(ctx, false, m.lk.value)
}

// Do acquires the lock (waiting as Acquire does), runs fn, and releases the
// lock. The ctx passed to fn is cancelled, with cause ErrLost, if the lease
// is lost while fn runs, and carries the Lease: LeaseFromContext gives fn
// its Token, to fence its writes. Do returns fn's error joined with Release's:
//   - an error matching ErrLost means the lease was lost before fn returned,
//     so fn's work may have overlapped another holder's;
//   - one matching ErrNotReleased means fn finished under a valid lease but
//     the lock could not be deleted: it is left to expire after its TTL.
func (m *Mutex) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	return do(ctx, m.Acquire, fn)
}

// do is Do for anything that acquires a Lease.
func do(ctx context.Context, acquire func(context.Context) (*Lease, error), fn func(ctx context.Context) error) (err error) {
	l, err := acquire(ctx)
	if err != nil {
		return err
	}
	fctx, cancel := context.WithCancelCause(context.WithValue(ctx, leaseKey{}, l))
	stop := context.AfterFunc(l.ctx, func() { cancel(context.Cause(l.ctx)) })
	// Deferred, so that a panic in fn releases the lock too.
	defer func() {
		// Mark the work as finished first: from here on, the lease
		// running out is a failed release, not a loss.
		l.beginRelease()
		stop()
		cancel(nil)
		// Release even if ctx has ended; the lease's deadline bounds it.
		rerr := l.Release(context.WithoutCancel(ctx))
		if errors.Is(rerr, ErrAlreadyReleased) {
			rerr = nil // fn released it itself, through LeaseFromContext
		}
		err = errors.Join(err, rerr)
	}()
	return fn(fctx)
}
