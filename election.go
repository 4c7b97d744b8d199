package dimutex

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// ErrNoLeader means nobody leads: the election's lock object is missing,
// or its lease has expired.
var ErrNoLeader = errors.New("dimutex: no leader")

// Election chooses one leader among the processes that campaign on the same
// bucket and name, and lets anyone learn who leads and what the leader
// publishes. It is a Mutex whose lease is the leadership: the lock object
// is the election, its holder the leader, and the holder's value (see
// Lease.Proclaim) is stored with the lease, so that one read returns both.
//
// Leadership is a lease like any other: it is refreshed in the background,
// it ends with Release (resigning) or by loss, which Done and Err signal,
// and its Token fences the leader's writes to shared resources. Followers
// and observers only read; they never write while a leader's lease is
// live.
type Election struct {
	lk *lock
}

// NewElection returns the election held in the object name of bucket. It
// takes the options of NewGCS and, like it, checks everything but sends no
// request.
func NewElection(bucket, name string, opts ...Option) (*Election, error) {
	m, err := NewGCS(bucket, name, opts...)
	if err != nil {
		return nil, err
	}
	return &Election{lk: m.lk}, nil
}

// String returns the election's lock object, "gs://bucket/name".
func (e *Election) String() string { return e.lk.ref }

// Leader is the leader of an election, as one read saw it.
type Leader struct {
	// Owner describes the leader (WithOwner).
	Owner string
	// Value is what the leader publishes: the value of Campaign, or of its
	// latest Proclaim.
	Value string
	// Token is the leader's fencing token; 0 in the zero Leader, which
	// Observe yields for "no leader".
	Token int64
	// Since is when this leader acquired the leadership, by the server's
	// clock.
	Since time.Time
	// Expires is when its leadership lapses unless renewed, by the
	// server's clock as of the read: its last write, plus its TTL, plus the
	// 1 s margin, after which a follower may take over. (By the local
	// clock if the server sent no time.)
	Expires time.Time
	// Generation is the lock object's generation at the read.
	Generation int64
}

// Campaign waits until this caller leads, then returns its Lease, which
// publishes value (at most MaxValueBytes of UTF-8) for followers. The Lease
// is the leadership: Release resigns, Done and Err signal its loss, Token
// fences. Campaign waits as Mutex.Acquire does, and fails as it does.
func (e *Election) Campaign(ctx context.Context, value string) (*Lease, error) {
	if err := checkValue("Campaign", value); err != nil {
		return nil, err
	}
	return e.lk.acquire(ctx, true, value)
}

// Leader reads who leads now, with one request. It returns an error
// matching ErrNoLeader if nobody does (no lock object, or an expired one),
// and one matching ErrNotALock if the object is not a dimutex lock. A
// missing bucket reads as no leader; Observe tells the two apart.
func (e *Election) Leader(ctx context.Context) (Leader, error) {
	lk := e.lk
	obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
	switch {
	case gcsjson.IsNotFound(err):
		return Leader{}, fmt.Errorf("%w in %s", ErrNoLeader, lk.ref)
	case err != nil:
		return Leader{}, fmt.Errorf("dimutex: leader: %w", err)
	}
	rec := readRecord(obj.Metadata)
	if !rec.isLock() {
		return Leader{}, lk.notALock(obj)
	}
	now := time.Now()
	left := expiresIn(obj, rec.ttl, lk.margin, now, now)
	if left < 0 {
		return Leader{}, fmt.Errorf("%w in %s: the lease of %q (token %d) expired %v ago", ErrNoLeader, lk.ref, rec.owner, rec.tokenOf(obj), round(-left))
	}
	return leaderOf(rec, obj, left, now), nil
}

// leaderOf returns the Leader of a live lease.
func leaderOf(rec record, obj *gcsjson.Object, left time.Duration, now time.Time) Leader {
	expires := now.Add(left) // by the local clock, if the server sent no time
	if !obj.ServerTime.IsZero() && !obj.Updated.IsZero() {
		expires = obj.Updated.Add(rec.ttl + clockMargin)
	}
	return Leader{
		Owner:      rec.owner,
		Value:      rec.value,
		Token:      rec.tokenOf(obj),
		Since:      rec.acquiredAt(obj),
		Expires:    expires,
		Generation: obj.Generation,
	}
}

// Observe yields the current leader, then each change: a new leader (new
// token), a new value, and changes to and from "no leader", which is
// yielded as the zero Leader (Token 0) with a nil error. Refreshes that
// change nothing are not yielded. It only reads, never writes.
//
// It polls with a waiter's schedule: a read 100 ms after a change, then
// backing off to 5 s (the bounds set by WithBackoff) while nothing
// changes, and, while a leader is live, a read as soon as its lease may
// have expired. So a new leader or value is seen within the current poll
// interval (at most the backoff maximum), and a leader that crashed is
// seen gone within a poll interval of its expiry.
//
// Transient failures are retried. A permanent one (such as a missing
// bucket, missing permissions, or an object that is not a dimutex lock) is
// yielded as the last error. The sequence ends when ctx ends or the caller
// stops iterating.
func (e *Election) Observe(ctx context.Context) iter.Seq2[Leader, error] {
	return func(yield func(Leader, error) bool) {
		lk := e.lk
		w := lk.newWaiter()
		var last Leader
		first, checkedBucket := true, false
		for {
			obj, err := lk.client.Get(ctx, lk.bucket, lk.name)
			if ctx.Err() != nil {
				return
			}
			var cur Leader
			left := lk.backoffMax + dateResolution // no leader: poll by the backoff alone
			switch {
			case gcsjson.IsNotFound(err) && !checkedBucket:
				checkedBucket = true
				if berr := lk.client.CheckBucket(ctx, lk.bucket); gcsjson.IsNotFound(berr) {
					yield(Leader{}, fmt.Errorf("dimutex: observe: bucket %q does not exist: %w", lk.bucket, berr))
					return
				}
			case gcsjson.IsNotFound(err):
			case err != nil:
				yield(Leader{}, fmt.Errorf("dimutex: observe: %w", err))
				return
			default:
				rec := readRecord(obj.Metadata)
				if !rec.isLock() {
					yield(Leader{}, lk.notALock(obj))
					return
				}
				now := time.Now()
				if l := w.expiresIn(0, obj, rec.ttl, lk.margin, now); l >= 0 {
					cur, left = leaderOf(rec, obj, l, now), l
				}
			}
			if first || cur.Token != last.Token || cur.Value != last.Value {
				first, last = false, cur
				if !yield(cur, nil) {
					return
				}
				w.polls = 0 // changes come in bursts: look again soon
			}
			if sleep(ctx, w.pause(left)) != nil {
				return
			}
		}
	}
}

// Run is the leader loop. It campaigns with value; once leading, it runs fn
// with a ctx that is cancelled, with cause ErrLost, if the leadership is
// lost, and that carries the leader's Lease (LeaseFromContext), whose Token
// fences the leader's writes. After a loss it campaigns again. When fn returns while this caller
// still leads, or ctx ends, Run resigns (releases the lease) and returns
// fn's error joined with the release's, or the error that ended the
// campaign.
func (e *Election) Run(ctx context.Context, value string, fn func(ctx context.Context) error) error {
	if err := checkValue("Run", value); err != nil {
		return err
	}
	campaign := func(ctx context.Context) (*Lease, error) { return e.lk.acquire(ctx, true, value) }
	for {
		err := do(ctx, campaign, fn)
		if !errors.Is(err, ErrLost) || ctx.Err() != nil {
			return err
		}
		e.lk.log.Warn("dimutex: leadership lost; campaigning again", slog.String("error", err.Error()))
	}
}
