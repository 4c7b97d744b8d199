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
	)
	for {
		if write {
			if !wait && writes == tryWrites {
				return nil, fmt.Errorf("%w: lost %d races to acquire %s", ErrAlreadyAcquired, writes, m)
			}
			writes++
			sent := time.Now()
			obj, err := m.client.Insert(ctx, m.bucket, m.name, match, upload)
			if err == nil {
				return m.newLease(rec, obj, obj.SentAt), nil
			}
			if mayHaveApplied(err) && firstSent.IsZero() {
				firstSent = sent
			}
			if ctx.Err() != nil {
				return nil, m.abandon(ctx, rec, firstSent, err)
			}
			if !gcsjson.IsPreconditionFailed(err) && !mayHaveApplied(err) {
				return nil, fmt.Errorf("dimutex: acquire: %w", err)
			}
		}
		write = false
		obj, err := m.client.Get(ctx, m.bucket, m.name)
		switch {
		case gcsjson.IsNotFound(err):
			match, write = 0, true
			continue
		case err != nil && ctx.Err() != nil:
			return nil, m.abandon(ctx, rec, firstSent, err)
		case err != nil:
			return nil, fmt.Errorf("dimutex: acquire: %w", err)
		}
		holder := readRecord(obj.Metadata)
		if holder.lease == rec.lease {
			if !firstSent.IsZero() && time.Now().Before(m.deadline(firstSent)) {
				m.log.Debug("dimutex: adopted an acquisition whose answer was lost", slog.Int64("generation", obj.Generation))
				return m.newLease(holder, obj, firstSent), nil
			}
			// Ours, but its deadline is unknown or past: renew it with a
			// compare-and-swap before trusting it.
			rec.token, rec.acquired = obj.Generation, obj.TimeCreated
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
			return nil, heldError(m, holder, obj, left)
		}
		t := time.NewTimer(w.pause(left))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, m.abandon(ctx, rec, firstSent, ctx.Err())
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

// abandon ends an acquisition that ctx cut short. If a write of ours may have
// landed, it makes a brief best-effort attempt to delete it, so that the
// lock is not left held by nobody until its TTL runs out.
func (m *Mutex) abandon(ctx context.Context, rec record, firstSent time.Time, cause error) error {
	err := fmt.Errorf("dimutex: acquire: %w", cause)
	if firstSent.IsZero() {
		return err
	}
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cleanupTimeout)
	defer cancel()
	obj, gerr := m.client.Get(cctx, m.bucket, m.name)
	if gerr != nil || readRecord(obj.Metadata).lease != rec.lease {
		return err
	}
	if derr := m.client.Delete(cctx, m.bucket, m.name, obj.Generation); derr != nil {
		m.log.Warn("dimutex: could not remove the lock acquired by a cancelled Acquire; it expires after its TTL",
			slog.String("error", derr.Error()))
	}
	return err
}

// cleanupTimeout bounds the cleanup after a cancelled Acquire.
const cleanupTimeout = 5 * time.Second
