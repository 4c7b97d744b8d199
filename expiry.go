package dimutex

import (
	"time"

	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/backoff"
)

// Lease timing.
//
// A waiter judges a holder's lease by the server's clock: the lease has
// expired once serverNow - updated > ttl + margin, where serverNow is the
// Date header of the read and updated is the holder's last write. Both
// come from GCS, so no local wall clock is trusted.
//
// The holder's own deadline is the local time at which its last successful
// write was sent, plus ttl, by both its monotonic and its wall clock
// (whichever comes first: the monotonic clock stops while a host is
// suspended). The server stamped that write no earlier than it was sent,
// so the holder stops trusting its lease no later than any waiter could see
// it expire, provided the server's clock runs no faster than the holder's
// by more than margin over one ttl.

// clockMargin is the safety margin added to a holder's TTL before a waiter
// may take over: the documented bound on clock-rate differences is one
// second per TTL.
const clockMargin = Margin

// dateResolution is the resolution of the Date header: the server's clock
// is up to this much later than the Date it sends.
const dateResolution = time.Second

// expiresIn returns how long the lease in obj has left; a negative result
// means it has expired. It is the earlier of two estimates, each safe on
// its own:
//   - by server time, updated + ttl + margin - Date;
//   - by the reader's monotonic clock, ttl + margin after seenAt, when this
//     version of the object was first seen (it was written before that).
//
// The second is what is left when Date is missing or unreadable, and it
// bounds the wait when Date has gone backwards or updated is later than
// Date: a reader never waits more than ttl + margin, by its own clock,
// for one version of a lock.
func expiresIn(obj *gcsjson.Object, ttl, margin time.Duration, seenAt, now time.Time) time.Duration {
	local := seenAt.Add(ttl + margin).Sub(now)
	if obj.ServerTime.IsZero() || obj.Updated.IsZero() {
		return local
	}
	return min(obj.Updated.Add(ttl+margin).Sub(obj.ServerTime), local)
}

// waiter is the state of a caller that polls live leases: an Acquire, a
// Semaphore's Acquire, or an Election's Observe.
type waiter struct {
	min, max time.Duration
	jitter   backoff.Jitter
	polls    int        // polls since the holders changed
	holders  string     // who held the lock (or slots) at the last poll
	seen     []sighting // per object polled: one for a Mutex, one per slot
}

// sighting is the version of an object last seen, and when it was first
// seen, by the local monotonic clock.
type sighting struct {
	gen     int64
	updated time.Time
	at      time.Time
}

func (lk *lock) newWaiter() waiter {
	return waiter{min: lk.backoffMin, max: lk.backoffMax, jitter: lk.jitter}
}

// expiresIn records a read of object i (0 for a Mutex) and returns how
// long the lease it holds, with the given ttl, has left.
func (w *waiter) expiresIn(i int, obj *gcsjson.Object, ttl, margin time.Duration, now time.Time) time.Duration {
	for len(w.seen) <= i {
		w.seen = append(w.seen, sighting{})
	}
	s := &w.seen[i]
	if obj.Generation != s.gen || !obj.Updated.Equal(s.updated) {
		*s = sighting{gen: obj.Generation, updated: obj.Updated, at: now}
	}
	return expiresIn(obj, ttl, margin, s.at, now)
}

// saw records who holds the lock now; a change makes polling eager again,
// since handoffs come in bursts.
func (w *waiter) saw(holders string) {
	if holders != w.holders {
		w.holders, w.polls = holders, 0
	}
}

// pause returns how long to sleep before the next read: the jittered
// backoff, or less if the lease may expire sooner. Since Date counts whole
// seconds, left may overstate the time left by up to a second; pause sleeps
// until the earliest moment of expiry and then reads every min, so that the
// takeover comes soon after the lease expires, without a burst of reads.
func (w *waiter) pause(left time.Duration) time.Duration {
	d := backoff.Equal(w.jitter, backoff.Step(w.min, w.max, w.polls))
	w.polls++
	return max(min(d, left-dateResolution), w.min)
}

// refreshAt returns when a lease whose last write was sent at sent should
// refresh.
func (lk *lock) refreshAt(sent time.Time) time.Time { return sent.Add(lk.refresh) }

// retryRefreshAt returns when a lease should try to refresh again after
// failures consecutive failed refreshes.
func (lk *lock) retryRefreshAt(failures int, now time.Time) time.Time {
	return now.Add(backoff.Equal(lk.jitter, backoff.Step(lk.backoffMin, lk.backoffMax, failures-1)))
}
