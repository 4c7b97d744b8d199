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

// A Lease is one holding of a lock: of a Mutex, of a Semaphore's slot, or
// of an Election's leadership. Until it ends, a background goroutine
// refreshes it every refresh interval. It ends when Release succeeds, when
// it is lost, or when Release fails until its deadline; then Done is
// closed, Err says which, and no further request is sent for it. A Lease
// that is dropped without Release keeps the lock until its goroutine fails
// to refresh it. Its methods are safe for concurrent use.
type Lease struct {
	lk    *lock
	id    string // the lease id
	token int64

	// rec is what every write of the lease stores. It is read and changed
	// only by a holder of the write token.
	rec record

	// ctx is cancelled, with the lease's cause, when the lease ends; Done
	// is its Done channel.
	ctx    context.Context
	end    context.CancelCauseFunc
	exited chan struct{} // closed when the refresher goroutine returns
	wake   chan struct{} // tells the refresher that its schedule changed
	start  time.Time     // when the lease began, for Held in events

	// refreshCtx scopes background refreshes; Release cancels it.
	refreshCtx    context.Context
	cancelRefresh context.CancelFunc

	// writing holds a token while a write is under way, so that the
	// lease's writes never race each other; waiting for it heeds ctx.
	writing chan struct{}

	mu        sync.Mutex // guards the fields below
	gen       int64      // generation of the lease's latest write
	sent      time.Time  // when that write was sent (monotonic)...
	sentWall  time.Time  // ...and the wall clock then
	refreshAt time.Time  // when the refresher should write next
	failures  int        // consecutive failed background refreshes
	value     string     // the value the lease publishes
	releasing bool       // Release was called: refresh no more
	inTime    bool       // Release was first called while the lease was valid
	maybeGone bool       // a delete of ours may have landed
	err       error      // nil while held, then how it ended
	cause     error      // err, with the reason
}

// newLease starts a lease of lk whose write, stored as rec, was sent at
// sent and returned obj.
func (lk *lock) newLease(rec record, obj *gcsjson.Object, sent time.Time) *Lease {
	rec.token = rec.tokenOf(obj)
	rec.acquired = rec.acquiredAt(obj)
	l := &Lease{
		lk:       lk,
		id:       rec.lease,
		token:    rec.token,
		rec:      rec,
		value:    rec.value,
		exited:   make(chan struct{}),
		wake:     make(chan struct{}, 1),
		writing:  make(chan struct{}, 1),
		start:    time.Now(),
		gen:      obj.Generation,
		sent:     sent,
		sentWall: lk.wall(sent),
	}
	l.ctx, l.end = context.WithCancelCause(context.Background())
	l.refreshCtx, l.cancelRefresh = context.WithCancel(context.Background())
	l.refreshCtx = withToken(l.refreshCtx, lk, rec.token)
	l.refreshAt = lk.refreshAt(sent)
	lk.log.Debug("dimutex: acquired", slog.Int64("token", rec.token), slog.String("owner", rec.owner))
	go l.run()
	return l
}

// leaseKey carries the Lease in the context that Do, Semaphore.Do and
// Election.Run pass to their function.
type leaseKey struct{}

// LeaseFromContext returns the Lease that Mutex.Do, Semaphore.Do or
// Election.Run holds for the function it runs, from the ctx passed to that
// function, so that the function can fence its writes with the Lease's
// Token or publish with Proclaim. It returns nil for any other context.
func LeaseFromContext(ctx context.Context) *Lease {
	l, _ := ctx.Value(leaseKey{}).(*Lease)
	return l
}

// Token returns the lease's fencing token: the generation of the write that
// acquired it. It does not change when the lease is refreshed. GCS
// guarantees that generations are unique; in practice they increase, so a
// later holder has a larger token.
func (l *Lease) Token() int64 { return l.token }

// Done returns a channel that is closed when the lease ends.
func (l *Lease) Done() <-chan struct{} { return l.ctx.Done() }

// Err returns nil while the lease is held, then how it ended:
// ErrAlreadyReleased after Release deleted the lock, ErrLost after a loss,
// or ErrNotReleased if Release was called in time but could not delete the
// lock before the lease's deadline.
func (l *Lease) Err() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Deadline returns the local time at which the lease ends unless it is
// refreshed first. It is the send time of the lease's last successful
// write plus the TTL, brought forward if the wall clock has run ahead of
// the monotonic clock since then (a suspended host).
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadlineLocked(time.Now())
}

// deadlineLocked returns the lease's deadline as judged at now.
func (l *Lease) deadlineLocked(now time.Time) time.Time {
	d := l.lk.deadline(l.sent)
	if lead := l.lk.wall(now).Sub(l.sentWall) - now.Sub(l.sent); lead > 0 {
		d = d.Add(-lead)
	}
	return d
}

// Refresh extends the lease now, by a compare-and-swap write of its current
// generation. It waits for any other write of the lease to finish, and
// retries transient failures, until ctx ends or the lease's deadline
// passes. It returns an error matching ErrLost if the lease is gone, and
// one matching ErrAlreadyReleased once Release has been called, even if
// Release failed: the holder has said its work is done.
func (l *Lease) Refresh(ctx context.Context) error {
	if err := l.lockWrites(ctx); err != nil {
		return fmt.Errorf("dimutex: refresh: %w", err)
	}
	defer l.unlockWrites()
	if err := l.writable("refresh"); err != nil {
		return err
	}
	return l.refreshLocked(withToken(ctx, l.lk, l.token), "refresh", l.rec, false)
}

// Release deletes the lock object with a compare-and-swap on the lease's
// generation and stops refreshing. It retries transient failures until ctx
// ends or the lease's deadline passes. A second call returns
// ErrAlreadyReleased; after a loss it returns an error matching ErrLost.
//
// If the lock cannot be deleted, Release returns an error matching
// ErrNotReleased, and the lock is left to expire at GCS: when the deadline
// passes first, or when GCS refuses the delete for good (say, 403: the
// credentials may create objects but not delete them); the error wraps
// GCS's. If Release stops early because ctx ended, the lease is no longer
// refreshed; it ends with ErrNotReleased at its deadline, and Release may
// be called again until then.
func (l *Lease) Release(ctx context.Context) error {
	l.beginRelease()
	l.cancelRefresh() // an in-flight refresh is abandoned, not lost
	l.poke()

	if err := l.lockWrites(ctx); err != nil {
		return fmt.Errorf("dimutex: release: %w", err)
	}
	err := l.releaseLocked(withToken(ctx, l.lk, l.token))
	if err != nil && ctx.Err() == nil && l.ctx.Err() == nil {
		// Refused for good: calling again would fail again, and keeping
		// the lease until its deadline would only keep its goroutine.
		err = l.notReleased(err)
	}
	l.unlockWrites()
	if l.ctx.Err() != nil {
		<-l.exited // no goroutine outlives the lease
	}
	return err
}

// beginRelease records that the holder has finished with the lease: from
// now on it is not refreshed, and, if it is still valid, its running out
// is a failed release (ErrNotReleased), not a loss.
func (l *Lease) beginRelease() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.releasing {
		return
	}
	l.releasing = true
	now := time.Now()
	l.inTime = l.err == nil && now.Before(l.deadlineLocked(now))
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

// refreshLocked writes rec, the lease's record or a changed one, with a
// compare-and-swap on the lease's generation. On success rec becomes the
// lease's record.
func (l *Lease) refreshLocked(ctx context.Context, op string, rec record, background bool) error {
	start := time.Now()
	var attempts int
	err := l.write(ctx, op, func(ctx context.Context, gen int64) error {
		obj, err := l.lk.client.Insert(ctx, l.lk.bucket, l.lk.name, gen, rec.write())
		if err == nil {
			attempts = obj.Attempts
			l.extend(obj, rec)
		}
		return err
	})
	if err != nil {
		return err
	}
	// A loss declared while the write was under way stands.
	if _, err := l.current(); err != nil {
		return err
	}
	if t := l.lk.trace; t != nil && t.Refreshed != nil {
		t.Refreshed(RefreshEvent{Lock: l.lk.ref, Token: l.token, Latency: time.Since(start), Attempts: attempts, Background: background})
	}
	return nil
}

func (l *Lease) releaseLocked(ctx context.Context) error {
	err := l.write(ctx, "release", func(ctx context.Context, gen int64) error {
		err := l.lk.client.Delete(ctx, l.lk.bucket, l.lk.name, gen)
		switch {
		case err == nil:
			l.released()
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
	// Released by this call, unless the lease ended otherwise first.
	if _, err := l.current(); !errors.Is(err, ErrAlreadyReleased) {
		return err
	}
	return nil
}

// write sends one of the lease's writes, a compare-and-swap on its current
// generation, cut off at its deadline. When a write fails, settle decides
// what that means; write tries again if it adopted a generation of ours.
func (l *Lease) write(ctx context.Context, op string, send func(ctx context.Context, gen int64) error) error {
	for range maxRecoveries {
		gen, err := l.current()
		if err != nil {
			return err
		}
		deadline := l.Deadline()
		if !time.Now().Before(deadline) {
			return l.expire("its deadline passed before its " + op)
		}
		wctx, cancel := context.WithDeadline(ctx, deadline)
		err = send(wctx, gen)
		cancel()
		if err == nil {
			return nil
		}
		if adopted, err := l.settle(ctx, op, err, gen); !adopted {
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
// generation), is gone or someone else's after a delete of ours that may
// have landed (released), or is someone else's otherwise (lost).
func (l *Lease) settle(ctx context.Context, op string, werr error, gen int64) (adopted bool, err error) {
	expired := func() bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		now := time.Now()
		return !now.Before(l.deadlineLocked(now))
	}
	switch {
	case expired():
		return false, l.expire(fmt.Sprintf("its deadline passed during its %s (%v)", op, werr))
	case ctx.Err() != nil:
		return false, fmt.Errorf("dimutex: %s: %w", op, werr)
	case !gcsjson.IsPreconditionFailed(werr) && !gcsjson.IsNotFound(werr) && !mayHaveApplied(werr):
		return false, fmt.Errorf("dimutex: %s: %w", op, werr)
	}
	gctx, cancel := context.WithDeadline(ctx, l.Deadline())
	obj, gerr := l.lk.client.Get(gctx, l.lk.bucket, l.lk.name)
	cancel()
	l.mu.Lock()
	gone := l.maybeGone
	l.mu.Unlock()
	switch {
	case gcsjson.IsNotFound(gerr) && !gone:
		return false, l.lose(LossDeleted, "the lock object was deleted by someone else")
	case gcsjson.IsNotFound(gerr):
		// A delete of ours landed although its answer was lost.
		return false, l.releasedBy(op)
	case gerr != nil && expired():
		return false, l.expire(fmt.Sprintf("its deadline passed during its %s (%v)", op, gerr))
	case gerr != nil:
		return false, fmt.Errorf("dimutex: %s: %w (then, reading the lock: %w)", op, werr, gerr)
	}
	holder := readRecord(obj.Metadata)
	switch {
	case holder.lease != l.id && gone:
		// A delete of ours may have landed, and the lock is someone
		// else's now, so written after our last write (which landed): our
		// delete did land, and someone has acquired since. Nothing
		// overlapped our lease. (Only an outside actor's delete before
		// ours would look the same, and no read can tell the two apart.)
		// Timestamps cannot decide it: GCS's clock may step back between
		// two writes. (Simulation seed 5917.)
		return false, l.releasedBy(op)
	case holder.lease != l.id && !holder.isLock():
		return false, l.lose(LossOverwritten, "the lock object was replaced by another tool's object, which is not a lock")
	case holder.lease != l.id:
		return false, l.lose(LossTaken, fmt.Sprintf("the lock was taken by %q (token %d)", holder.owner, holder.tokenOf(obj)))
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
	l.lk.log.Debug("dimutex: adopted a write whose answer was lost", slog.String("op", op), slog.Int64("generation", obj.Generation))
	return true, nil
}

// releasedBy ends the lease as released, found out during op, and returns
// op's result: nil for a release, ErrAlreadyReleased for other writes.
func (l *Lease) releasedBy(op string) error {
	l.released()
	if op == "release" {
		return nil
	}
	return ErrAlreadyReleased
}

// writable returns nil if op, a refresh or a proclaim, may write: the
// lease has not ended and Release has not been called.
func (l *Lease) writable(op string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.cause != nil:
		return l.cause
	case l.releasing:
		return fmt.Errorf("dimutex: %s: Release was called: %w", op, ErrAlreadyReleased)
	}
	return nil
}

// current returns the lease's generation, or why it has ended.
func (l *Lease) current() (gen int64, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.gen, l.cause
}

// extend records a successful write of rec that returned obj.
func (l *Lease) extend(obj *gcsjson.Object, rec record) {
	l.mu.Lock()
	if l.err == nil {
		l.rec, l.value = rec, rec.value
		l.gen = obj.Generation
		l.sent, l.sentWall = obj.SentAt, l.lk.wall(obj.SentAt)
		l.failures = 0
		l.maybeGone = false // a write of ours landed after any delete
		l.refreshAt = l.lk.refreshAt(obj.SentAt)
	}
	l.mu.Unlock()
	l.poke()
}

// expire ends the lease because its deadline passed: a failed release if
// Release had been called in time, a loss otherwise. It returns the error
// for the caller.
func (l *Lease) expire(why string) error {
	return l.notReleased(errors.New(why))
}

// notReleased ends the lease, whose lock could not be deleted for reason,
// as expire does.
func (l *Lease) notReleased(reason error) error {
	l.mu.Lock()
	inTime := l.inTime
	l.mu.Unlock()
	if !inTime {
		return l.lose(LossDeadline, reason.Error())
	}
	cause := fmt.Errorf("%w: %w", ErrNotReleased, reason)
	l.finish(ErrNotReleased, cause, func() {
		l.lk.log.Warn("dimutex: lock not released; it expires after its TTL", slog.Int64("token", l.token), slog.String("reason", reason.Error()))
		if t := l.lk.trace; t != nil && t.Released != nil {
			t.Released(ReleaseEvent{Lock: l.lk.ref, Token: l.token, Held: time.Since(l.start), Err: cause})
		}
	})
	_, err := l.current()
	return err
}

// lose ends the lease as lost, unless it has ended already, and returns the
// error for the caller.
func (l *Lease) lose(reason LossReason, why string) error {
	cause := fmt.Errorf("%w: %s", ErrLost, why)
	l.finish(ErrLost, cause, func() {
		l.lk.log.Warn("dimutex: lease lost", slog.Int64("token", l.token), slog.String("reason", why))
		if t := l.lk.trace; t != nil && t.Lost != nil {
			t.Lost(LossEvent{Lock: l.lk.ref, Token: l.token, Reason: reason, Err: cause, Held: time.Since(l.start)})
		}
	})
	_, err := l.current()
	return err
}

// released ends the lease as released, unless it has ended already.
func (l *Lease) released() {
	l.finish(ErrAlreadyReleased, ErrAlreadyReleased, func() {
		l.lk.log.Debug("dimutex: released", slog.Int64("token", l.token))
		if t := l.lk.trace; t != nil && t.Released != nil {
			t.Released(ReleaseEvent{Lock: l.lk.ref, Token: l.token, Held: time.Since(l.start)})
		}
	})
}

// finish ends the lease with err, unless it has ended already. Err then
// returns err; the lease's other methods, and context.Cause of Do's
// context, return cause, which says why. report, which logs and calls the
// Trace, runs before Done closes, so that whoever watches Done sees the
// event already counted.
func (l *Lease) finish(err, cause error, report func()) {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return
	}
	l.err, l.cause = err, cause
	l.mu.Unlock()
	report()
	l.end(cause)
	l.cancelRefresh()
}

func (l *Lease) poke() {
	select {
	case l.wake <- struct{}{}:
	default:
	}
}

// wallCheck is the longest the lease's goroutine sleeps: after a host was
// suspended, whose monotonic clock then stood still, the lease ends within
// this long of the resume rather than at its next timer.
const wallCheck = time.Second

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
		l.mu.Lock()
		now := time.Now()
		expired := l.err == nil && !now.Before(l.deadlineLocked(now))
		l.mu.Unlock()
		if expired {
			l.expire("its deadline passed without a successful refresh")
		}
	}
}

// next returns the time of the goroutine's next event, and whether it is a
// refresh rather than a check of the deadline.
func (l *Lease) next() (time.Time, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := time.Now()
	check := l.deadlineLocked(now)
	if soon := now.Add(wallCheck); soon.Before(check) {
		check = soon
	}
	if l.lk.refresh > 0 && !l.releasing && !l.refreshAt.After(check) {
		return l.refreshAt, true
	}
	return check, false
}

func (l *Lease) backgroundRefresh() {
	if l.lockWrites(l.refreshCtx) != nil {
		return // being released, or ended
	}
	err := l.refreshLocked(l.refreshCtx, "refresh", l.rec, true)
	l.unlockWrites()
	if err == nil || l.refreshCtx.Err() != nil {
		return // refreshed, or ended, or being released
	}
	// Not a loss (say, a 403): try again after a backoff, until the deadline.
	now := time.Now()
	l.mu.Lock()
	l.failures++
	failures := l.failures
	l.refreshAt = l.lk.retryRefreshAt(failures, now)
	retryIn, left := l.refreshAt.Sub(now), l.deadlineLocked(now).Sub(now)
	l.mu.Unlock()
	l.lk.log.Warn("dimutex: refresh failed; retrying until the lease's deadline",
		slog.Int64("token", l.token), slog.String("error", err.Error()))
	if t := l.lk.trace; t != nil && t.RefreshFailed != nil {
		t.RefreshFailed(RefreshFailedEvent{Lock: l.lk.ref, Token: l.token, Err: err, Failures: failures, RetryIn: retryIn, Left: left})
	}
}
