package dimutex

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// tryWrites bounds the writes of one TryAcquire, which can lose races for a
// lock that keeps being freed or expiring under it.
const tryWrites = 3

// acquire runs the acquisition protocol:
//
//  1. Create the object with ifGenerationMatch=0. Success means held.
//  2. Otherwise read it. If it carries our lease id, a write of ours landed
//     although its answer was lost: adopt it.
//  3. If the holder's lease has expired by server time, take it over with
//     ifGenerationMatch=<its generation>, and go to 2 on failure.
//  4. If it is live, TryAcquire stops; Acquire sleeps and reads again,
//     writing only once a read shows the object gone or expired.
func (m *Mutex) acquire(ctx context.Context, wait bool) (*Lease, error) {
	rec := record{lease: newLeaseID(), ttl: m.ttl, owner: m.owner}
	upload := rec.write()
	w := waiter{min: m.backoffMin, max: m.backoffMax}
	var (
		match     int64 // ifGenerationMatch of the next write; 0 creates
		write     = true
		writes    int
		firstSent time.Time // when the first write that may have landed was sent
		renewed   bool      // a write of ours was renewed after its lease ran out
	)
	// fail ends the acquisition with err, first removing a lock of ours
	// that may have landed unseen. If ctx has ended, err says so first.
	fail := func(err error) (*Lease, error) {
		if ctxErr := ctx.Err(); ctxErr != nil && !errors.Is(err, ctxErr) {
			err = fmt.Errorf("dimutex: acquire: %w (then: %w)", ctxErr, err)
		}
		if !firstSent.IsZero() {
			m.cleanup(ctx, rec)
		}
		return nil, err
	}
	for {
		if write {
			if !wait && writes == tryWrites {
				return fail(fmt.Errorf("%w: lost %d races to acquire %q", ErrAlreadyAcquired, writes, m.String()))
			}
			writes++
			sent := time.Now()
			obj, err := m.client.Insert(ctx, m.bucket, m.name, match, upload)
			if err == nil && (renewed || time.Now().Before(m.deadline(obj.SentAt))) {
				// A lease that has run out even so (a TTL shorter than a
				// round trip) ends at once, as its deadline says.
				return m.newLease(rec, obj, obj.SentAt), nil
			}
			if err == nil {
				// Ours, but retries took so long that the lease it began
				// has run out: renew it, once, before trusting it.
				rec.token, rec.acquired = rec.tokenOf(obj), obj.TimeCreated
				upload = rec.write()
				match, firstSent, renewed = obj.Generation, obj.SentAt, true
				continue
			}
			if mayHaveApplied(err) && firstSent.IsZero() {
				firstSent = sent
			}
			if ctx.Err() != nil || !gcsjson.IsPreconditionFailed(err) && !mayHaveApplied(err) {
				return fail(fmt.Errorf("dimutex: acquire: %w", err))
			}
		}
		write = false
		obj, err := m.client.Get(ctx, m.bucket, m.name)
		switch {
		case gcsjson.IsNotFound(err):
			match, write = 0, true
			continue
		case err != nil:
			return fail(fmt.Errorf("dimutex: acquire: %w", err))
		}
		holder := readRecord(obj.Metadata)
		if holder.lease == rec.lease {
			if !firstSent.IsZero() && time.Now().Before(m.deadline(firstSent)) {
				m.log.Debug("dimutex: adopted an acquisition whose answer was lost", slog.Int64("generation", obj.Generation))
				return m.newLease(holder, obj, firstSent), nil
			}
			// Ours, but its deadline is unknown or past: renew it with a
			// compare-and-swap before trusting it, keeping its token.
			renewed = true
			rec.token = holder.tokenOf(obj)
			rec.acquired = holder.acquired
			if rec.acquired.IsZero() {
				rec.acquired = obj.TimeCreated
			}
			upload = rec.write()
			match, write = obj.Generation, true
			continue
		}
		left := w.expiresIn(obj, holder, m.ttl, time.Now())
		if left < 0 {
			m.log.Debug("dimutex: taking over an expired lease",
				slog.String("owner", holder.owner), slog.Int64("generation", obj.Generation))
			match, write = obj.Generation, true
			continue
		}
		if !wait {
			return fail(heldError(m, holder, obj, left))
		}
		t := time.NewTimer(w.pause(left))
		select {
		case <-ctx.Done():
			t.Stop()
			return fail(fmt.Errorf("dimutex: acquire: %w", ctx.Err()))
		case <-t.C:
		}
	}
}

func heldError(m *Mutex, holder record, obj *gcsjson.Object, left time.Duration) error {
	return fmt.Errorf("%w: %q is held by %q (token %d) for up to %v more",
		ErrAlreadyAcquired, m.String(), holder.owner, holder.tokenOf(obj), left.Round(time.Millisecond))
}

// mayHaveApplied reports whether a failed write may nonetheless have landed.
func mayHaveApplied(err error) bool {
	var e *gcsjson.Error
	return errors.As(err, &e) && e.MayHaveApplied
}

// cleanup makes a brief best-effort attempt to delete the lock if it
// carries rec's lease id: a write of an acquisition that is giving up
// landed although its answer was lost. Otherwise the lock would be held by
// nobody until its TTL ran out.
func (m *Mutex) cleanup(ctx context.Context, rec record) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	obj, err := m.client.Get(cctx, m.bucket, m.name)
	if err != nil || readRecord(obj.Metadata).lease != rec.lease {
		return
	}
	if err := m.client.Delete(cctx, m.bucket, m.name, obj.Generation); err != nil {
		m.log.Warn("dimutex: could not remove a lock left by an abandoned acquisition; it expires after its TTL",
			slog.String("error", err.Error()))
	}
}

// cleanupTimeout bounds the cleanup after a cancelled Acquire.
const cleanupTimeout = 5 * time.Second
