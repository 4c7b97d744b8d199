package dimutex

import "time"

// Trace is a set of functions that are called as events happen to the locks
// of a Mutex, an Election or a Semaphore, for metrics and logs, in the style
// of net/http/httptrace. Set it with WithTrace; package
// github.com/dimutex/dimutex/contrib/prometheus and .../contrib/otel turn
// the events into metrics.
//
// Each function is called synchronously, on the goroutine where the event
// happens, and must not block or call the lock's methods: a slow hook slows
// the lock, and a blocked one can cost a lease. Any field may be nil. With
// no Trace, or nil fields, no event is built and nothing is allocated.
type Trace struct {
	// Request is called after every HTTP request, retries included.
	Request func(RequestEvent)
	// Acquired is called when an acquisition succeeds.
	Acquired func(AcquireEvent)
	// Refreshed is called after each successful refresh of a lease:
	// background, Lease.Refresh or Lease.Proclaim.
	Refreshed func(RefreshEvent)
	// RefreshFailed is called when a background refresh failed and will be
	// tried again before the lease's deadline.
	RefreshFailed func(RefreshFailedEvent)
	// Lost is called once when a lease is lost.
	Lost func(LossEvent)
	// Released is called once when a lease ends by Release: with a nil Err
	// if the lock was deleted, or ErrNotReleased if it was left to expire.
	Released func(ReleaseEvent)
}

// RequestEvent is one HTTP request.
type RequestEvent struct {
	// Lock is "gs://bucket/name" (for a list, the prefix listed).
	Lock string
	// Token is the fencing token of the lease the request is for; 0 for
	// requests of an acquisition, a waiter or an observer.
	Token int64
	// Op is the JSON API call: "insert", "get", "delete" or "list".
	Op string
	// Attempt counts the call's requests, from 1.
	Attempt int
	// Status is the HTTP status, or 0 if no answer arrived.
	Status int
	// Err is the transport error when no (complete) answer arrived.
	Err error
	// Duration is how long the request took.
	Duration time.Duration
	// MayHaveApplied reports a failed write that may nonetheless have
	// landed.
	MayHaveApplied bool
	// Retry reports that the call will try again.
	Retry bool
}

// AcquireEvent is a successful acquisition.
type AcquireEvent struct {
	// Lock is "gs://bucket/name": the lock, or the semaphore slot, taken.
	Lock  string
	Token int64
	Owner string
	// Waited is the time from the call of Acquire (TryAcquire, Campaign) to
	// its return.
	Waited time.Duration
	// Reads and Writes count the calls spent (reads include lists), not
	// counting retries of one call.
	Reads, Writes int
	// TookOver reports that an expired lease was taken over; Previous
	// names its holder.
	TookOver       bool
	PreviousOwner  string
	PreviousToken  int64
	PreviousExpiry time.Duration // how long ago it expired, by server time
}

// RefreshEvent is a successful refresh.
type RefreshEvent struct {
	Lock  string
	Token int64
	// Latency is the time the refresh took, retries included.
	Latency time.Duration
	// Attempts counts its requests.
	Attempts int
	// Background is true for the lease's own refreshes.
	Background bool
}

// RefreshFailedEvent is a background refresh that failed and will be tried
// again.
type RefreshFailedEvent struct {
	Lock  string
	Token int64
	Err   error
	// Failures counts consecutive failed refreshes.
	Failures int
	// RetryIn is the time until the next try.
	RetryIn time.Duration
	// Left is the time left until the lease's deadline.
	Left time.Duration
}

// LossReason says why a lease was lost.
type LossReason string

// The reasons a lease is lost.
const (
	// LossDeadline: it was not refreshed before its deadline.
	LossDeadline LossReason = "deadline"
	// LossTaken: another holder's lease replaced it.
	LossTaken LossReason = "taken"
	// LossDeleted: someone else deleted the lock (such as `dimutex release
	// --force`).
	LossDeleted LossReason = "deleted"
	// LossOverwritten: another tool replaced the lock with an object that
	// is not a lock.
	LossOverwritten LossReason = "overwritten"
)

// LossEvent is a lost lease.
type LossEvent struct {
	Lock   string
	Token  int64
	Reason LossReason
	// Err matches ErrLost and says why.
	Err error
	// Held is how long the lease had been held.
	Held time.Duration
}

// ReleaseEvent is a lease ended by Release.
type ReleaseEvent struct {
	Lock  string
	Token int64
	// Held is how long the lease was held.
	Held time.Duration
	// Err is nil if the lock was deleted, or matches ErrNotReleased if
	// Release failed until the deadline and the lock was left to expire.
	Err error
}
