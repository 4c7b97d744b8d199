package dimutex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// A Lease is one holding of a Mutex, returned by Acquire, TryAcquire or
// given to Do's function. Until it ends, a background goroutine refreshes it
// every refresh interval. It ends when Release succeeds or when it is lost;
// then Done is closed, Err says which, and no further request is sent for
// it. A Lease that is dropped without Release keeps the lock until its
// goroutine fails to refresh it. Its methods are safe for concurrent use.
type Lease struct {
	m   *Mutex
	rec record // what every write of this lease stores

	// ctx is cancelled, with cause ErrLost or ErrAlreadyReleased, when the
	// lease ends; Done is its Done channel.
	ctx    context.Context
	end    context.CancelCauseFunc
	exited chan struct{} // closed when the refresher goroutine returns
	wake   chan struct{} // tells the refresher that its schedule changed

	// refreshCtx scopes background refreshes; Release cancels it.
	refreshCtx    context.Context
	cancelRefresh context.CancelFunc

	// writing holds a token while a write is under way, so that the
	// lease's writes never race each other; waiting for it heeds ctx.
	writing chan struct{}

	mu        sync.Mutex // guards the fields below
	gen       int64      // generation of the lease's latest write
	deadline  time.Time  // when that write was sent, plus the TTL, by the monotonic clock
	refreshAt time.Time  // when the refresher should write next
	failures  int        // consecutive failed background refreshes
	releasing bool       // Release was called: refresh no more
	maybeGone bool       // a delete of ours may have landed
	err       error      // nil while held, then ErrLost or ErrAlreadyReleased
	cause     error      // err, with the reason for a loss
}

// newLease starts a lease whose write, stored as rec, was sent at sent and
// returned obj.
func (m *Mutex) newLease(rec record, obj *gcsjson.Object, sent time.Time) *Lease {
	rec.token = rec.tokenOf(obj)
	if rec.acquired.IsZero() {
		rec.acquired = obj.TimeCreated
	}
	l := &Lease{
		m:        m,
		rec:      rec,
		exited:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		writing:  make(chan struct{}, 1),
		gen:      obj.Generation,
		deadline: m.deadline(sent),
	}
	l.ctx, l.end = context.WithCancelCause(context.Background())
	l.refreshCtx, l.cancelRefresh = context.WithCancel(context.Background())
	l.refreshAt = m.refreshAt(sent)
	m.log.Debug("dimutex: acquired", slog.Int64("token", rec.token), slog.String("owner", rec.owner))
	go l.run()
	return l
}

// Token returns the lease's fencing token: the generation of the write that
// acquired it. It does not change when the lease is refreshed. GCS
// guarantees that generations are unique; in practice they increase, so a
// later holder has a larger token.
func (l *Lease) Token() int64 { return l.rec.token }

// Done returns a channel that is closed when the lease ends, by Release or
// by loss.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err returns nil while the lease is held, ErrLost after it was lost, and
// ErrAlreadyReleased after Release.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Deadline returns the local time at which the lease ends unless it is
// refreshed first.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

// Refresh extends the lease now, by a compare-and-swap write of its current
// generation. It waits for any other write of the lease to finish, and
// retries transient failures, until ctx ends or the lease's deadline
// passes. It returns an error matching ErrLost if the lease is gone, and
// ErrAlreadyReleased after Release.
func (l *Lease) Refresh(ctx context.Context) error {
	if err := l.lockWrites(ctx); err != nil {
		return fmt.Errorf("dimutex: refresh: %w", err)
	}
	defer l.unlockWrites()
	return l.refreshLocked(ctx)
}

// Release deletes the lock object with a compare-and-swap on the lease's
// generation and stops refreshing. It retries transient failures until ctx
// ends or the lease's deadline passes. A second call returns
// ErrAlreadyReleased; after a loss it returns an error matching ErrLost.
//
// If Release fails otherwise (say, ctx ended), the lease is no longer
// refreshed; it ends at its deadline, and Release may be called again.
func (l *Lease) Release(ctx context.Context) error {
	l.mu.Lock()
	l.releasing = true
	l.mu.Unlock()
	l.cancelRefresh() // an in-flight refresh is abandoned, not lost
	l.poke()

	if err := l.lockWrites(ctx); err != nil {
		return fmt.Errorf("dimutex: release: %w", err)
	}
	err := l.releaseLocked(ctx)
	l.unlockWrites()
	if l.ctx.Err() != nil {
		<-l.exited // no goroutine outlives the lease
	}
	return err
}

// lockWrites waits until no other write of the lease is under way, or ctx
// ends.
func (l *Lease) lockWrites(ctx context.Context) error {
	select {
	case l.writing <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *Lease) unlockWrites() { <-l.writing }

// maxRecoveries bounds how often one call adopts a generation of ours that
// it learned of by a read, before it gives up.
const maxRecoveries = 3

func (l *Lease) refreshLocked(ctx context.Context) error {
	err := l.write(ctx, "refresh", func(ctx context.Context, gen int64) error {
		obj, err := l.m.client.Insert(ctx, l.m.bucket, l.m.name, gen, l.rec.write())
		if err == nil {
			l.extend(obj)
		}
		return err
	})
	if err != nil {
		return err
	}
	// A loss declared while the write was under way stands.
	_, _, err = l.state()
	return err
}

func (l *Lease) releaseLocked(ctx context.Context) error {
	err := l.write(ctx, "release", func(ctx context.Context, gen int64) error {
		err := l.m.client.Delete(ctx, l.m.bucket, l.m.name, gen)
		switch {
		case err == nil:
			l.finish(ErrAlreadyReleased, ErrAlreadyReleased)
		case mayHaveApplied(err):
			l.mu.Lock()
			l.maybeGone = true
			l.mu.Unlock()
		}
		return err
	})
	if err != nil {
		return err
	}
	// Released by this call, unless a loss was declared first.
	if _, _, err := l.state(); !errors.Is(err, ErrAlreadyReleased) {
		return err
	}
	return nil
}

// write sends one of the lease's writes, a compare-and-swap on its current
// generation, cut off at its deadline. When a write fails, settle decides
// what that means; write tries again if it adopted a generation of ours.
func (l *Lease) write(ctx context.Context, op string, send func(ctx context.Context, gen int64) error) error {
	for range maxRecoveries {
		gen, deadline, err := l.state()
		if err != nil {
			return err
		}
		if !time.Now().Before(deadline) {
			return l.lose("its deadline passed before its " + op)
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err = send(wctx, gen)
		cancel()
		if err == nil {
			return nil
		}
		if adopted, err := l.settle(ctx, op, err, gen, deadline); !adopted {
			return err
		}
	}
	return fmt.Errorf("dimutex: %s: gave up after adopting %d generations of our own", op, maxRecoveries)
}

// settle decides what a failed write of generation gen means. It reports
// adopted if the write should be retried at a generation of ours that it
// found; otherwise err is the call's result.
//
// A 412 or 404, or a failure after which the write may have landed, is
// ambiguous: an earlier write of ours may have landed although its answer
// was lost. A read tells: the object still carries our lease id (adopt its
// generation), is gone after a delete of ours (released), or is someone
// else's (lost).
func (l *Lease) settle(ctx context.Context, op string, werr error, gen int64, deadline time.Time) (adopted bool, err error) {
	expired := func() bool { return !time.Now().Before(deadline) }
	switch {
	case expired():
		return false, l.lose(fmt.Sprintf("its deadline passed during %s (%v)", op, werr))
	case ctx.Err() != nil:
		return false, fmt.Errorf("dimutex: %s: %w", op, werr)
	case !gcsjson.IsPreconditionFailed(werr) && !gcsjson.IsNotFound(werr) && !mayHaveApplied(werr):
		return false, fmt.Errorf("dimutex: %s: %w", op, werr)
	}
	gctx, cancel := context.WithDeadline(ctx, deadline)
	obj, gerr := l.m.client.Get(gctx, l.m.bucket, l.m.name)
	cancel()
	switch {
	case gcsjson.IsNotFound(gerr):
		l.mu.Lock()
		gone := l.maybeGone
		l.mu.Unlock()
		if !gone {
			return false, l.lose("the lock object was deleted by someone else")
		}
		// A delete of ours landed although its answer was lost.
		l.finish(ErrAlreadyReleased, ErrAlreadyReleased)
		if op == "release" {
			return false, nil
		}
		return false, ErrAlreadyReleased
	case gerr != nil && expired():
		return false, l.lose(fmt.Sprintf("its deadline passed during %s (%v)", op, gerr))
	case gerr != nil:
		return false, fmt.Errorf("dimutex: %s: %w (then, reading the lock: %w)", op, werr, gerr)
	}
	holder := readRecord(obj.Metadata)
	switch {
	case holder.lease != l.rec.lease:
		return false, l.lose(fmt.Sprintf("the lock was taken by %q (token %d)", holder.owner, holder.tokenOf(obj)))
	case obj.Generation == gen:
		// Still ours and unchanged: the write failed for another reason.
		return false, fmt.Errorf("dimutex: %s: %w", op, werr)
	}
	// A write of ours landed unseen. Adopt its generation but not a new
	// deadline, since we cannot know when it was sent; the retry sets one.
	l.mu.Lock()
	if l.err == nil {
		l.gen = obj.Generation
	}
	l.mu.Unlock()
	l.m.log.Debug("dimutex: adopted a write whose answer was lost", slog.String("op", op), slog.Int64("generation", obj.Generation))
	return true, nil
}

// state returns the lease's generation and deadline, or why it has ended.
func (l *Lease) state() (gen int64, deadline time.Time, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen, l.deadline, l.cause
}

// extend records a successful refresh.
func (l *Lease) extend(obj *gcsjson.Object) {
	l.mu.Lock()
	if l.err == nil {
		l.gen = obj.Generation
		l.deadline = l.m.deadline(obj.SentAt)
		l.failures = 0
		l.maybeGone = false // a write of ours landed after any delete
		l.refreshAt = l.m.refreshAt(obj.SentAt)
	}
	l.mu.Unlock()
	l.poke()
}

// lose ends the lease as lost, unless it has ended already, and returns the
// error for the caller.
func (l *Lease) lose(why string) error {
	cause := fmt.Errorf("%w: %s", ErrLost, why)
	if l.finish(ErrLost, cause) {
		l.m.log.Warn("dimutex: lease lost", slog.Int64("token", l.rec.token), slog.String("reason", why))
	}
	_, _, err := l.state()
	return err
}

// finish ends the lease with err, unless it has ended already, and reports
// whether it did. Err then returns err; the lease's other methods, and
// context.Cause of Do's context, return cause, which says why.
func (l *Lease) finish(err, cause error) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err != nil {
		return false
	}
	l.err, l.cause = err, cause
	l.end(cause)
	l.cancelRefresh()
	if err == ErrAlreadyReleased {
		l.m.log.Debug("dimutex: released", slog.Int64("token", l.rec.token))
	}
	return true
}

func (l *Lease) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// run is the lease's goroutine: it refreshes the lease on schedule and ends
// it at its deadline. It returns when the lease ends.
func (l *Lease) run() {
	defer close(l.exited)
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		at, refresh := l.next()
		t.Reset(time.Until(at))
		select {
		case <-l.ctx.Done():
			return
		case <-l.wake:
			continue
		case <-t.C:
		}
		if refresh {
			l.backgroundRefresh()
			continue
		}
		if _, deadline, err := l.state(); err == nil && !time.Now().Before(deadline) {
			l.lose("its deadline passed without a successful refresh")
		}
	}
}

// next returns the time of the goroutine's next event, and whether it is a
// refresh rather than the deadline.
func (l *Lease) next() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.m.refresh > 0 && !l.releasing && l.refreshAt.Before(l.deadline) {
		return l.refreshAt, true
	}
	return l.deadline, false
}

func (l *Lease) backgroundRefresh() {
	if l.lockWrites(l.refreshCtx) != nil {
		return // being released, or ended
	}
	err := l.refreshLocked(l.refreshCtx)
	l.unlockWrites()
	if err == nil || l.refreshCtx.Err() != nil {
		return // refreshed, or ended, or being released
	}
	// Not a loss (say, a 403): try again after a backoff, until the deadline.
	l.mu.Lock()
	l.failures++
	l.refreshAt = l.m.retryRefreshAt(l.failures, time.Now())
	l.mu.Unlock()
	l.m.log.Warn("dimutex: refresh failed; retrying until the lease's deadline",
		slog.Int64("token", l.rec.token), slog.String("error", err.Error()))
}
