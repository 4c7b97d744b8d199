package dimutex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/backoff"
)

// tryWrites bounds the writes of one TryAcquire, which can lose races for a
// lock that keeps being freed or expiring under it.
const tryWrites = 3

// acquire runs the acquisition protocol on one lock object:
//
//  1. Create the object with ifGenerationMatch=0. Success means held.
//  2. Otherwise read it. If it carries our lease id, a write of ours landed
//     although its answer was lost: adopt it. If it is not a dimutex lock,
//     stop: it is never overwritten.
//  3. If the holder's lease has expired by server time, take it over with
//     ifGenerationMatch=<its generation>, and go to 2 on failure.
//  4. If it is live, TryAcquire stops; Acquire sleeps and reads again,
//     writing only once a read shows the object gone or expired.
func (lk *lock) acquire(ctx context.Context, wait bool, value string) (*Lease, error) {
	a := lk.newAcquisition(value)
	w := lk.newWaiter()
	match, write := int64(0), true // the next write, if any: ifGenerationMatch=match
	for {
		if write {
			// A renewal of a write of ours is not a race lost, so it does
			// not count, up to a bound.
			if !wait && (a.writes >= 2*tryWrites || a.writes >= tryWrites && !a.renewed) {
				return a.fail(ctx, &heldError{fmt.Sprintf("dimutex: lost %d races to acquire %s; it keeps being taken", a.writes, lk.ref)})
			}
			l, again, err := a.write(ctx, lk, match)
			switch {
			case l != nil:
				return l, nil
			case again != 0:
				match = again
				continue
			case gcsjson.IsRateLimited(err) && ctx.Err() == nil:
				// Someone else is writing the lock: let a second pass,
				// then look again rather than wait in line to write.
				if err := sleep(ctx, rateLimitPause(lk)); err != nil {
					return a.fail(ctx, fmt.Errorf("dimutex: acquire: %w", err))
				}
			case ctx.Err() != nil || !gcsjson.IsPreconditionFailed(err) && !mayHaveApplied(err):
				return a.fail(ctx, fmt.Errorf("dimutex: acquire: %w", err))
			}
		}
		write = false
		a.reads++
		obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
		switch {
		case gcsjson.IsNotFound(err):
			a.fresh(nil)
			match, write = 0, true
			continue
		case err != nil:
			return a.fail(ctx, fmt.Errorf("dimutex: acquire: %w", err))
		}
		holder := readRecord(obj.Metadata)
		if l, again := a.ours(lk, holder, obj); l != nil {
			return l, nil
		} else if again != 0 {
			match, write = again, true
			continue
		}
		if !holder.isLock() {
			return a.fail(ctx, lk.notALock(obj))
		}
		w.saw(holder.lease)
		left := w.expiresIn(0, obj, holder.ttl, lk.margin, time.Now())
		if left < 0 {
			lk.log.Debug("dimutex: taking over an expired lease",
				slog.String("owner", holder.owner), slog.Int64("generation", obj.Generation))
			a.fresh(&takeover{owner: holder.owner, token: holder.tokenOf(obj), ago: -left})
			match, write = obj.Generation, true
			continue
		}
		if !wait {
			return a.fail(ctx, lk.heldError(holder, obj, left))
		}
		if err := sleep(ctx, w.pause(left)); err != nil {
			return a.fail(ctx, fmt.Errorf("dimutex: acquire: %w", err))
		}
	}
}

// acquisition is the state of one Acquire, TryAcquire or Campaign, or of a
// Semaphore's Acquire across its slots.
type acquisition struct {
	rec    record        // what the acquiring writes store
	upload gcsjson.Write // rec, encoded
	start  time.Time
	reads  int
	writes int
	// prev is the expired lease that the next write takes over, if any.
	prev *takeover
	// firstSent is when the first write that may have landed unseen was
	// sent, to the lock firstAt.
	firstSent time.Time
	firstAt   *lock
	// renewed reports that a lock of ours was renewed by a write after its
	// lease may have run out: trust it, since its deadline is now known.
	renewed bool
	// unseen are the locks to which a write may have landed unseen; an
	// acquisition that gives up deletes them if they carry its lease id.
	unseen []*lock
}

// takeover describes the expired lease that a write takes over.
type takeover struct {
	owner string
	token int64
	ago   time.Duration
}

// newAcquisition starts an acquisition whose lease will publish value.
func (lk *lock) newAcquisition(value string) *acquisition {
	rec := record{lease: lk.newID(), ttl: lk.ttl, owner: lk.owner, value: value, slots: lk.slots}
	return &acquisition{rec: rec, upload: rec.write(), start: time.Now()}
}

// write makes an acquiring write to lk at ifGenerationMatch=match (0
// creates). It returns the Lease if the lock is now ours; again, if it is
// ours but must first be renewed by a write at ifGenerationMatch=again;
// else the write's error.
func (a *acquisition) write(ctx context.Context, lk *lock, match int64) (l *Lease, again int64, err error) {
	a.writes++
	sent := time.Now()
	// A 429 comes back at once: the caller reads again and chooses anew.
	obj, err := lk.client.Insert(ctx, lk.bucket, lk.name, match, a.upload, gcsjson.FailOnRateLimit())
	if err == nil {
		if a.renewed || time.Now().Before(lk.deadline(obj.SentAt)) {
			// A lease that has run out even so (a TTL shorter than a round
			// trip) ends at once, as its deadline says.
			return a.lease(lk, a.rec, obj, obj.SentAt), 0, nil
		}
		// Ours, but retries took so long that the lease it began has run
		// out: renew it, once, before trusting it.
		a.renew(lk, a.rec, obj)
		return nil, obj.Generation, nil
	}
	if mayHaveApplied(err) {
		a.maybeLanded(lk, sent)
	}
	return nil, 0, err
}

// maybeLanded records that a write to lk, sent at sent, may have landed.
func (a *acquisition) maybeLanded(lk *lock, sent time.Time) {
	if a.firstSent.IsZero() {
		a.firstSent, a.firstAt = sent, lk
	}
	for _, u := range a.unseen {
		if u == lk {
			return
		}
	}
	a.unseen = append(a.unseen, lk)
}

// ours looks at obj, read from lk after a failed write. If it carries our
// lease id, a write of ours landed unseen: ours returns its Lease if its
// deadline is known to be ahead, or else the generation at which to renew
// it. It returns nil, 0 if obj is not ours.
func (a *acquisition) ours(lk *lock, holder record, obj *gcsjson.Object) (*Lease, int64) {
	if holder.lease != a.rec.lease {
		return nil, 0
	}
	if a.firstAt == lk && time.Now().Before(lk.deadline(a.firstSent)) {
		lk.log.Debug("dimutex: adopted an acquisition whose answer was lost", slog.Int64("generation", obj.Generation))
		return a.lease(lk, holder, obj, a.firstSent), 0
	}
	// Ours, but its deadline is unknown or past: renew it with a
	// compare-and-swap before trusting it, keeping its token.
	a.renew(lk, holder, obj)
	return nil, obj.Generation
}

// fresh prepares a write that acquires anew: a create, or a takeover of
// the expired lease prev. Its generation will be the token, so any token
// kept from a renewal of an earlier write of ours, which someone has since
// replaced, must go. (Found by the simulation, seed 1283: an acquisition
// whose own write had been taken over created the lock again and reported
// the old write's generation, smaller than the previous holder's token.)
func (a *acquisition) fresh(prev *takeover) {
	a.prev = prev
	if a.rec.token != 0 || !a.rec.acquired.IsZero() || a.renewed {
		a.rec.token, a.rec.acquired = 0, time.Time{}
		a.upload = a.rec.write()
		a.renewed = false
	}
}

// renew prepares the write that renews obj, a lock of ours written as rec.
func (a *acquisition) renew(lk *lock, rec record, obj *gcsjson.Object) {
	a.rec.token = rec.tokenOf(obj)
	a.rec.acquired = rec.acquiredAt(obj)
	a.upload = a.rec.write()
	a.renewed = true
	a.maybeLanded(lk, obj.SentAt)
}

// lease starts the Lease of an acquisition that holds lk, written as rec
// by a write sent at sent that returned obj.
func (a *acquisition) lease(lk *lock, rec record, obj *gcsjson.Object, sent time.Time) *Lease {
	l := lk.newLease(rec, obj, sent)
	if t := lk.trace; t != nil && t.Acquired != nil {
		e := AcquireEvent{Lock: lk.ref, Token: l.Token(), Owner: rec.owner,
			Waited: time.Since(a.start), Reads: a.reads, Writes: a.writes}
		if p := a.prev; p != nil {
			e.TookOver, e.PreviousOwner, e.PreviousToken, e.PreviousExpiry = true, p.owner, p.token, p.ago
		}
		t.Acquired(e)
	}
	return l
}

// fail ends the acquisition with err, first removing any lock of ours that
// may have landed unseen. If ctx has ended, err says so first.
func (a *acquisition) fail(ctx context.Context, err error) (*Lease, error) {
	if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
		err = fmt.Errorf("dimutex: acquire: %w (then: %w)", ctxErr, err)
	}
	a.cleanup(ctx, nil)
	return nil, err
}

// heldError reports a lock held by a live lease. It matches
// ErrAlreadyAcquired.
type heldError struct{ msg string }

func (e *heldError) Error() string        { return e.msg }
func (e *heldError) Is(target error) bool { return target == ErrAlreadyAcquired }

func (lk *lock) heldError(holder record, obj *gcsjson.Object, left time.Duration) error {
	msg := fmt.Sprintf("dimutex: %s is held by %q (token %d) for up to %v more", lk.ref, holder.owner, holder.tokenOf(obj), round(left))
	if holder.ttlCapped {
		msg += fmt.Sprintf(" (its stored TTL is missing or unusable, so it is judged as %v)", MaxTTL)
	}
	return &heldError{msg}
}

// round rounds d for people: to the second, or to the millisecond below a
// second.
func round(d time.Duration) time.Duration {
	if d >= time.Second || d <= -time.Second {
		return d.Round(time.Second)
	}
	return d.Round(time.Millisecond)
}

// mayHaveApplied reports whether a failed write may nonetheless have landed.
func mayHaveApplied(err error) bool {
	var e *gcsjson.Error
	return errors.As(err, &e) && e.MayHaveApplied
}

// rateLimitPause is how long an acquisition waits after a 429 on an
// object before it looks again: GCS allows about one write per second per
// object, so a second, jittered so that contenders spread out.
func rateLimitPause(lk *lock) time.Duration {
	return gcsjson.RateLimitBackoff + backoff.Full(lk.jitter, lk.backoffMin)
}

// sleep waits for d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// cleanup makes a brief best-effort attempt, cleanupTimeout in all, to
// delete the locks other than keep to which a write of the acquisition may
// have landed although its answer was lost. Otherwise such a lock would be
// held by nobody until its TTL ran out.
func (a *acquisition) cleanup(ctx context.Context, keep *lock) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	for _, lk := range a.unseen {
		if lk != keep {
			lk.removeIfOurs(cctx, a.rec.lease)
		}
	}
}

// removeIfOurs deletes the lock if it carries the lease id lease.
func (lk *lock) removeIfOurs(ctx context.Context, lease string) {
	obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
	if err != nil || readRecord(obj.Metadata).lease != lease {
		return
	}
	if err := lk.client.Delete(ctx, lk.bucket, lk.name, obj.Generation); err != nil {
		lk.log.Warn("dimutex: could not remove a lock left by an abandoned acquisition; it expires after its TTL",
			slog.String("error", err.Error()))
	}
}

// cleanupTimeout bounds the cleanup after an acquisition.
const cleanupTimeout = 5 * time.Second
