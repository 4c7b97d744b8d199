package dimutex

import (
	"time"

	"github.com/dimutex/dimutex/gcsjson"
	"github.com/dimutex/dimutex/internal/backoff"
)

// Lease timing.
//
// A waiter judges a holder's lease by the server's clock: the lease has
// expired once serverNow - updated > ttl + clockMargin, where serverNow is
// the Date header of the read and updated is the holder's last write. Both
// come from GCS, so no local wall clock is trusted.
//
// The holder's own deadline is the local monotonic time at which its last
// successful write was sent, plus ttl. The server stamped that write no
// earlier than it was sent, so the holder stops trusting its lease no later
// than any waiter could see it expire, provided the two clocks run at about
// the same rate.

// clockMargin is the safety margin added to a holder's TTL before a waiter
// may take over.
const clockMargin = time.Second

// dateResolution is the resolution of the Date header: the server's clock
// is up to this much later than the Date it sends.
const dateResolution = time.Second

// expiresIn returns how long the lease in obj has left, judged by server
// time; a negative result means it has expired. Without a server time it
// falls back to the local monotonic clock: the lease expires ttl +
// clockMargin after seenAt, when this version of the object was first seen.
func expiresIn(obj *gcsjson.Object, ttl time.Duration, seenAt, now time.Time) time.Duration {
	if !obj.ServerTime.IsZero() && !obj.Updated.IsZero() {
		return obj.Updated.Add(ttl + clockMargin).Sub(obj.ServerTime)
	}
	return seenAt.Add(ttl + clockMargin).Sub(now)
}

// waiter is the state of an Acquire that polls a live lease.
type waiter struct {
	min, max time.Duration
	polls    int       // polls since the holder changed
	holder   string    // the lease id seen last
	gen      int64     // the generation seen last...
	updated  time.Time // ...with its updated time...
	seenAt   time.Time // ...first seen at this local time
}

// expiresIn records a read of the lock and returns how long the holder's
// lease has left; see the package-level expiresIn.
func (w *waiter) expiresIn(obj *gcsjson.Object, holder record, ownTTL time.Duration, now time.Time) time.Duration {
	if obj.Generation != w.gen || !obj.Updated.Equal(w.updated) {
		w.gen, w.updated, w.seenAt = obj.Generation, obj.Updated, now
	}
	if holder.lease != w.holder {
		// A new holder: poll eagerly again, since handoffs come in bursts.
		w.holder, w.polls = holder.lease, 0
	}
	ttl := holder.ttl
	if ttl == 0 {
		ttl = ownTTL // not written by dimutex: assume our own TTL
	}
	return expiresIn(obj, ttl, w.seenAt, now)
}

// pause returns how long to sleep before the next read: the jittered
// backoff, or less if the lease may expire sooner. Since Date counts whole
// seconds, left may overstate the time left by up to a second; pause sleeps
// until the earliest moment of expiry and then reads every min, so that the
// takeover comes soon after the lease expires, without a burst of reads.
func (w *waiter) pause(left time.Duration) time.Duration {
	d := backoff.Equal(backoff.Step(w.min, w.max, w.polls))
	w.polls++
	return max(min(d, left-dateResolution), w.min)
}

// deadline returns a lease's deadline for a write sent at sent.
func (m *Mutex) deadline(sent time.Time) time.Time { return sent.Add(m.ttl) }

// refreshAt returns when a lease whose last write was sent at sent should
// refresh.
func (m *Mutex) refreshAt(sent time.Time) time.Time { return sent.Add(m.refresh) }

// retryRefreshAt returns when a lease should try to refresh again after
// failures consecutive failed refreshes.
func (m *Mutex) retryRefreshAt(failures int, now time.Time) time.Time {
	return now.Add(backoff.Equal(backoff.Step(m.backoffMin, m.backoffMax, failures-1)))
}
