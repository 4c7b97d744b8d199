package dimutex

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/dimutex/dimutex/gcsjson"
)

// MaxSlots bounds the size of a Semaphore.
const MaxSlots = 1000

// ErrSizeMismatch means that a semaphore's slots are held by clients that
// give it another size. Clients of one semaphore must agree on its size.
var ErrSizeMismatch = errors.New("dimutex: semaphore size mismatch")

// Semaphore lets at most size holders across all processes hold it at once.
// Each slot is a lock object of its own, so holders spread their writes
// over size objects, within GCS's limit of about one write per second per
// object.
//
// Slot i of the semaphore NAME is the object "NAME/slot-iii": i in three
// digits, from "NAME/slot-000" to "NAME/slot-999". Each slot records the
// semaphore's size. One objects-list request of the prefix "NAME/slot-"
// reads every slot, with the server's time; GCS lists are strongly
// consistent.
//
// Acquiring a free slot costs two requests, whatever the size: a list and
// a write. A waiter polls with one list per poll and never writes while
// every slot is live. Refreshing and releasing a slot cost one write each,
// on the holder's own slot. Listing is a Class A operation on GCS, priced
// like a write and about twelve times a read.
//
// Clients that disagree about the size must not silently exceed either
// bound: a client that sees a live slot stored with another size refuses
// to acquire, with an error matching ErrSizeMismatch, and Inspect reports
// each slot's stored size. Two clients that list an empty semaphore at the
// same moment with different sizes can both acquire, once; the next list
// by anyone reports the mismatch. To resize a semaphore, let every holder
// release (or its lease expire) first.
type Semaphore struct {
	*settings
	name   string
	ref    string // "gs://bucket/name"
	prefix string // what every slot's name starts with
	size   int
	slots  []*lock
}

// NewSemaphore returns the semaphore of size slots (1 to MaxSlots) named
// name in bucket. It takes the options of NewGCS and, like it, checks
// everything, including that every slot's name is a valid object name, but
// sends no request.
func NewSemaphore(bucket, name string, size int, opts ...Option) (*Semaphore, error) {
	if size < 1 || size > MaxSlots {
		return nil, &ConfigError{Option: "size", Value: strconv.Itoa(size), Reason: fmt.Sprintf("must be from 1 to %d", MaxSlots)}
	}
	s, err := newSettings(bucket, opts)
	if err != nil {
		return nil, err
	}
	if err := gcsjson.ValidateObjectName(name); err != nil {
		return nil, &ConfigError{Option: "name", Value: shorten(name), Err: err}
	}
	sem := &Semaphore{settings: s, name: name, ref: "gs://" + bucket + "/" + name, prefix: name + "/slot-", size: size}
	for i := range size {
		lk, err := s.newLock(slotName(name, i), size)
		if err != nil {
			return nil, &ConfigError{Option: "name", Value: shorten(name),
				Reason: fmt.Sprintf("cannot hold the slot names: %v", errors.Unwrap(err))}
		}
		sem.slots = append(sem.slots, lk)
	}
	return sem, nil
}

// slotName returns the name of slot i of the semaphore name.
func slotName(name string, i int) string { return fmt.Sprintf("%s/slot-%03d", name, i) }

// slotIndex returns the slot that the object objName is, if it is one.
func (s *Semaphore) slotIndex(objName string) (int, bool) {
	rest, ok := strings.CutPrefix(objName, s.prefix)
	if !ok || len(rest) != 3 {
		return 0, false
	}
	i := 0
	for _, c := range []byte(rest) {
		// Exactly three digits: "+01" is not slot 1.
		if c < '0' || c > '9' {
			return 0, false
		}
		i = i*10 + int(c-'0')
	}
	return i, true
}

// String returns the semaphore's location, "gs://bucket/name".
func (s *Semaphore) String() string { return s.ref }

// Size returns the number of slots.
func (s *Semaphore) Size() int { return s.size }

// Acquire waits for a free or expired slot and returns its Lease, which
// behaves as a Mutex's Lease: it is refreshed in the background, Done and
// Err signal its loss, Release frees the slot, Token fences (per slot).
// Contenders pick among the free slots at random, so that they spread out.
// It fails with an error matching ErrSizeMismatch if live slots were taken
// with another size, and ErrNotALock if a slot's name holds an object that
// is not a lock.
func (s *Semaphore) Acquire(ctx context.Context) (*Lease, error) { return s.acquire(ctx, true) }

// TryAcquire takes a slot if one is free or expired, or returns an error
// matching ErrAlreadyAcquired that says how many hold the semaphore.
// Transient failures are retried until ctx ends.
func (s *Semaphore) TryAcquire(ctx context.Context) (*Lease, error) { return s.acquire(ctx, false) }

// Do is Acquire, fn, and Release, with fn's ctx cancelled on loss: see
// Mutex.Do.
func (s *Semaphore) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	return do(ctx, s.Acquire, fn)
}

// Inspect returns one Status per slot, read with one objects-list request
// (more only if other objects crowd the slots' prefix). A free slot has
// only its Name set. It never writes.
func (s *Semaphore) Inspect(ctx context.Context) ([]Status, error) {
	objs, err := s.client.List(ctx, s.bucket, s.prefix)
	if err != nil {
		return nil, fmt.Errorf("dimutex: inspect %s: %w", s.ref, err)
	}
	sts := make([]Status, s.size)
	for i := range sts {
		sts[i].Name = s.slots[i].name
	}
	now := time.Now()
	for _, obj := range objs {
		if i, ok := s.slotIndex(obj.Name); ok && i < s.size {
			sts[i] = s.status(obj, now)
		}
	}
	return sts, nil
}

// slotView is one list of the semaphore, judged.
type slotView struct {
	objs     []*gcsjson.Object // per slot below size; nil if free
	recs     []record
	lefts    []time.Duration
	live     int
	owners   []string      // of the live slots
	earliest time.Duration // until the first live slot may expire
	holders  string        // the live leases, for the waiter
}

// view judges a list of the semaphore's objects. It returns an error if
// the semaphore cannot be acquired as it stands: a live slot of another
// size, or a slot that is not a lock.
func (s *Semaphore) view(objs []*gcsjson.Object, w *waiter, now time.Time) (*slotView, error) {
	v := &slotView{objs: make([]*gcsjson.Object, s.size), recs: make([]record, s.size), lefts: make([]time.Duration, s.size), earliest: MaxTTL}
	var holders strings.Builder
	for _, obj := range objs {
		i, ok := s.slotIndex(obj.Name)
		if !ok {
			continue // another object under the prefix
		}
		rec := readRecord(obj.Metadata)
		left := time.Duration(-1)
		if rec.isLock() {
			left = w.expiresIn(i, obj, rec.ttl, s.margin, now)
		}
		switch {
		case i >= s.size && left >= 0:
			return nil, fmt.Errorf("%w: %s has a live slot %q of a semaphore of %d slots; this client uses %d", ErrSizeMismatch, s.ref, obj.Name, rec.slots, s.size)
		case i >= s.size:
			continue
		case !rec.isLock():
			return nil, s.slots[i].notALock(obj)
		case left >= 0 && rec.slots != s.size:
			return nil, fmt.Errorf("%w: slot %s is held by %q with a size of %d; this client uses %d", ErrSizeMismatch, s.slots[i].ref, rec.owner, rec.slots, s.size)
		}
		v.objs[i], v.recs[i], v.lefts[i] = obj, rec, left
		if left >= 0 {
			v.live++
			v.owners = append(v.owners, rec.owner)
			v.earliest = min(v.earliest, left)
			holders.WriteString(rec.lease)
		}
	}
	v.holders = holders.String()
	return v, nil
}

func (s *Semaphore) acquire(ctx context.Context, wait bool) (*Lease, error) {
	a := s.slots[0].newAcquisition(s.value)
	w := s.slots[0].newWaiter()
	hot := make(map[int]time.Time) // slots that answered 429, until when
poll:
	for {
		if !wait && a.writes >= tryWrites {
			return a.fail(ctx, &heldError{fmt.Sprintf("dimutex: lost %d races for a slot of %s; it keeps being taken", a.writes, s.ref)})
		}
		a.reads++
		objs, err := s.client.List(ctx, s.bucket, s.prefix)
		if err != nil {
			return a.fail(ctx, fmt.Errorf("dimutex: acquire %s: %w", s.ref, err))
		}
		now := time.Now()
		v, err := s.view(objs, &w, now)
		if err != nil {
			return a.fail(ctx, err)
		}
		// A write of ours that landed unseen shows in the list.
		for i, rec := range v.recs {
			if v.objs[i] == nil {
				continue
			}
			l, again := a.ours(s.slots[i], rec, v.objs[i])
			if l != nil {
				return l, nil
			}
			if again != 0 {
				if l, ok, err := s.write(ctx, a, i, again); ok {
					return l, err
				}
				continue poll
			}
		}
		var free []int
		var cooling time.Duration // until the first hot free slot cools
		for i, obj := range v.objs {
			if obj != nil && v.lefts[i] >= 0 {
				continue
			}
			if until := hot[i]; now.Before(until) {
				if d := until.Sub(now); cooling == 0 || d < cooling {
					cooling = d
				}
				continue
			}
			free = append(free, i)
		}
		if len(free) == 0 && cooling > 0 {
			// Free slots, but each was just written by someone else.
			if err := sleep(ctx, cooling); err != nil {
				return a.fail(ctx, fmt.Errorf("dimutex: acquire %s: %w", s.ref, err))
			}
			continue
		}
		if len(free) == 0 {
			if !wait {
				return a.fail(ctx, &heldError{fmt.Sprintf("dimutex: semaphore %s is full: %d of %d slots held (by %s); the first may free in up to %v",
					s.ref, v.live, s.size, quoteAll(v.owners), round(v.earliest))})
			}
			w.saw(v.holders)
			if err := sleep(ctx, w.pause(v.earliest)); err != nil {
				return a.fail(ctx, fmt.Errorf("dimutex: acquire %s: %w", s.ref, err))
			}
			continue
		}
		i := free[int(s.jitter(time.Duration(len(free)-1)))]
		var match int64
		var prev *takeover
		if obj := v.objs[i]; obj != nil {
			rec := v.recs[i]
			match = obj.Generation
			prev = &takeover{owner: rec.owner, token: rec.tokenOf(obj), ago: -v.lefts[i]}
		}
		a.fresh(prev)
		l, ok, err := s.write(ctx, a, i, match)
		if ok {
			return l, err
		}
		if gcsjson.IsRateLimited(err) {
			// Someone else is writing slot i: try the others first.
			hot[i] = time.Now().Add(rateLimitPause(s.slots[i]))
		}
		// Lost the race for slot i, or the write may have landed unseen:
		// the next list tells.
	}
}

// write makes the acquiring write to slot i at ifGenerationMatch=match,
// renewing it if needed. It reports done if the acquisition is over, with
// its result; otherwise the caller lists again (and err is a 429, if that
// is why).
func (s *Semaphore) write(ctx context.Context, a *acquisition, i int, match int64) (l *Lease, done bool, err error) {
	for {
		l, again, err := a.write(ctx, s.slots[i], match)
		switch {
		case l != nil:
			// An earlier write of ours to another slot may still land, or
			// have landed unseen: remove it, so that it does not hold a
			// slot for nothing until its TTL runs out. (Simulation seed
			// 4466.)
			a.cleanup(ctx, s.slots[i])
			return l, true, nil
		case again != 0:
			match = again
			continue
		case ctx.Err() == nil && gcsjson.IsRateLimited(err):
			return nil, false, err
		case ctx.Err() != nil || !gcsjson.IsPreconditionFailed(err) && !mayHaveApplied(err):
			_, err = a.fail(ctx, fmt.Errorf("dimutex: acquire %s: %w", s.ref, err))
			return nil, true, err
		}
		return nil, false, nil
	}
}

func quoteAll(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}
