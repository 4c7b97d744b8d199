package dimutex_test

// Semaphore: N slots, each a lock object of its own, read together with one
// objects-list request.

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

// Never more than N hold the semaphore: N + 3 processes cycle through it
// while a tenth of the requests fail (503s, resets before and after the
// request is applied).
func TestSemaphoreNeverMoreThanN(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		const size, rounds = 3, 4
		const procs = size + 3
		w.srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
			h := fnv.New32a()
			fmt.Fprint(h, r.Seq)
			switch h.Sum32() % 30 {
			case 0:
				return status503
			case 1:
				return resetBefore
			case 2:
				return resetAfter
			}
			return dimutextest.Fault{}
		})
		var (
			inside, most atomic.Int32
			holds        atomic.Int32
			wg           sync.WaitGroup
		)
		for i := range procs {
			s := w.semaphore("pool", size, dimutex.WithOwner(fmt.Sprint("proc-", i)), dimutex.WithTTL(30*time.Second))
			wg.Go(func() {
				for range rounds {
					l, err := s.Acquire(context.Background())
					if err != nil {
						t.Error(err)
						return
					}
					n := inside.Add(1)
					for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
					}
					if n > size {
						t.Errorf("%d holders of a semaphore of %d", n, size)
					}
					holds.Add(1)
					time.Sleep(2 * time.Second)
					inside.Add(-1)
					if err := l.Release(context.Background()); err != nil {
						t.Errorf("Release: %v", err)
					}
				}
			})
		}
		wg.Wait()
		faults := 0
		for _, r := range w.srv.Requests() {
			if r.Fault.Kind != dimutextest.NoFault {
				faults++
			}
		}
		if holds.Load() != procs*rounds || most.Load() != size || faults == 0 {
			t.Errorf("%d holds, at most %d at once, %d faults; want %d holds, %d at once, some faults", holds.Load(), most.Load(), faults, procs*rounds, size)
		}
		t.Logf("%d holds by %d processes, at most %d at once; %d faults in %d requests", holds.Load(), procs, most.Load(), faults, len(w.srv.Requests()))
	})
}

// Slot i of the semaphore NAME is the object NAME/slot-iii, which records
// the semaphore's size.
func TestSemaphoreSlotNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		s := w.semaphore("jobs/pool", 3)
		if s.String() != ref("jobs/pool") || s.Size() != 3 {
			t.Errorf("String = %q, Size = %d", s.String(), s.Size())
		}
		var leases []*dimutex.Lease
		for range 3 {
			l, err := s.TryAcquire(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		var names []string
		for _, o := range w.srv.Objects(bucket, "") {
			names = append(names, o.Name)
			if o.Metadata["dimutex-slots"] != "3" {
				t.Errorf("%s records size %q, want 3", o.Name, o.Metadata["dimutex-slots"])
			}
		}
		if want := []string{"jobs/pool/slot-000", "jobs/pool/slot-001", "jobs/pool/slot-002"}; !slices.Equal(names, want) {
			t.Errorf("objects %q, want %q", names, want)
		}
		for _, l := range leases {
			release(t, l)
		}
		if objs := w.srv.Objects(bucket, ""); len(objs) != 0 {
			t.Errorf("%d slots left after every Release", len(objs))
		}
	})
}

// Only "slot-" and exactly three digits name a slot: other objects under
// the prefix, even ones that strconv would read as a number, are neither
// slots nor in the way.
func TestSemaphoreOtherObjectsUnderItsPrefix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		for _, name := range []string{"pool/slot-+01", "pool/slot--00", "pool/slot-1", "pool/slot-0001", "pool/notes"} {
			if _, err := w.srv.PutObject(bucket, name, []byte("x"), nil); err != nil {
				t.Fatal(err)
			}
		}
		s := w.semaphore("pool", 2)
		ctx := context.Background()
		a, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("TryAcquire = %v, want a slot", err)
		}
		b, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatalf("second TryAcquire = %v, want a slot", err)
		}
		sts, err := s.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, st := range sts {
			names = append(names, st.Name)
		}
		if want := []string{"pool/slot-000", "pool/slot-001"}; !slices.Equal(names, want) {
			t.Errorf("Inspect lists %q, want %q", names, want)
		}
		release(t, a)
		release(t, b)
		if n := len(w.srv.Objects(bucket, "pool/")); n != 5 {
			t.Errorf("%d objects under the prefix after the releases, want the 5 others untouched", n)
		}
	})
}

// Acquiring a free slot costs two requests, one list and one write,
// whatever the size, even with all but one slot held.
func TestSemaphoreAcquireCost(t *testing.T) {
	for _, size := range []int{1, 10, 100, 1000} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				w := newWorld(t)
				ctx := context.Background()
				s := w.semaphore("pool", size, dimutex.WithRefreshInterval(0))
				// Hold all slots but one (no more than 20 holders, to keep
				// the test fast; the list reads them all at once either way).
				var leases []*dimutex.Lease
				for range min(size-1, 20) {
					l, err := s.TryAcquire(ctx)
					if err != nil {
						t.Fatal(err)
					}
					leases = append(leases, l)
				}
				w.srv.ClearRequests()
				for _, acquire := range []func(context.Context) (*dimutex.Lease, error){s.TryAcquire, s.Acquire} {
					l, err := acquire(ctx)
					if err != nil {
						t.Fatal(err)
					}
					if got := summary(w.requests("")); got != "insert=1 list=1" {
						t.Errorf("acquiring a free slot sent %s, want insert=1 list=1", got)
					}
					if r := w.requests("")[0]; r.Op != "list" || r.Query.Get("prefix") != "pool/slot-" {
						t.Errorf("first request %s prefix=%q, want a list of pool/slot-", r.Op, r.Query.Get("prefix"))
					}
					release(t, l)
					w.srv.ClearRequests()
				}
				for _, l := range leases {
					release(t, l)
				}
			})
		})
	}
}

// While every slot is live, a waiter polls with one list per poll and never
// writes; when a slot is freed it takes it with one write.
func TestSemaphoreWaiterOnlyLists(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		s := w.semaphore("pool", 2, dimutex.WithTTL(30*time.Second))
		a, _ := s.TryAcquire(ctx)
		b, _ := s.TryAcquire(ctx)
		got := make(chan *dimutex.Lease)
		go func() {
			l, err := w.semaphore("pool", 2, w.as("waiter")).Acquire(ctx)
			if err != nil {
				t.Error(err)
			}
			got <- l
		}()
		time.Sleep(time.Minute) // the holders refresh; the waiter polls
		polls := w.requests("waiter")
		if len(polls) < 5 {
			t.Errorf("the waiter polled %d times in a minute", len(polls))
		}
		for _, r := range polls {
			if r.Op != "list" {
				t.Errorf("the waiter sent %s %s while every slot was live", r.Method, r.Op)
			}
		}
		release(t, a)
		l := <-got
		if reqs := w.requests("waiter")[len(polls):]; summary(reqs) != "insert=1 list=1" {
			t.Errorf("after the release the waiter sent %s, want one list and one write", summary(reqs))
		}
		release(t, l)
		release(t, b)
	})
}

// TryAcquire on a full semaphore reads once, writes nothing, and says how
// many hold it and who.
func TestSemaphoreFull(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		var leases []*dimutex.Lease
		for i := range 3 {
			l, err := w.semaphore("pool", 3, dimutex.WithOwner(fmt.Sprint("h", i))).TryAcquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			leases = append(leases, l)
		}
		w.srv.ClearRequests()
		_, err := w.semaphore("pool", 3).TryAcquire(ctx)
		if !errors.Is(err, dimutex.ErrAlreadyAcquired) || !strings.HasPrefix(err.Error(), "dimutex: semaphore "+ref("pool")+" is full: 3 of 3 slots held (by ") {
			t.Errorf("TryAcquire on a full semaphore = %v, want ErrAlreadyAcquired saying 3 of 3 slots held", err)
		}
		for i := range 3 {
			if !strings.Contains(err.Error(), fmt.Sprintf(`"h%d"`, i)) {
				t.Errorf("the error does not name holder h%d: %v", i, err)
			}
		}
		if got := summary(w.requests("")); got != "list=1" {
			t.Errorf("TryAcquire on a full semaphore sent %s, want list=1", got)
		}
		for _, l := range leases {
			release(t, l)
		}
	})
}

// Inspect returns one Status per slot from one list: the held ones
// described, the free ones by name only.
func TestSemaphoreInspect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		s := w.semaphore("pool", 4, dimutex.WithOwner("worker"), dimutex.WithValue("busy"))
		a, _ := s.TryAcquire(ctx)
		b, _ := s.TryAcquire(ctx)
		w.srv.ClearRequests()
		sts, err := s.Inspect(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got := summary(w.requests("")); got != "list=1" {
			t.Errorf("Inspect sent %s, want list=1", got)
		}
		if len(sts) != 4 {
			t.Fatalf("%d statuses, want 4", len(sts))
		}
		held := map[int64]bool{}
		for i, st := range sts {
			if st.Name != fmt.Sprintf("pool/slot-%03d", i) {
				t.Errorf("status %d is of %q", i, st.Name)
			}
			switch {
			case st.Held:
				held[st.Token] = true
				if st.Owner != "worker" || st.Value != "busy" || st.Slots != 4 || !st.Exists {
					t.Errorf("held slot %+v", st)
				}
			case st != (dimutex.Status{Name: st.Name}):
				t.Errorf("a free slot has more than its name: %+v", st)
			}
		}
		if len(held) != 2 || !held[a.Token()] || !held[b.Token()] {
			t.Errorf("held slots have tokens %v, want %d and %d", held, a.Token(), b.Token())
		}
		release(t, a)
		release(t, b)
	})
}

// Clients must agree on the size: one that sees live slots stored with
// another size refuses to acquire (ErrSizeMismatch), whether the other
// size is smaller or larger, and waits for nothing.
func TestSemaphoreSizeMismatch(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		three := w.semaphore("pool", 3, dimutex.WithOwner("three"))
		a, _ := three.TryAcquire(ctx)
		b, _ := three.TryAcquire(ctx)
		for _, size := range []int{5, 2} {
			s := w.semaphore("pool", size)
			for name, acquire := range map[string]func(context.Context) (*dimutex.Lease, error){"TryAcquire": s.TryAcquire, "Acquire": s.Acquire} {
				_, err := acquire(ctx)
				if !errors.Is(err, dimutex.ErrSizeMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("this client uses %d", size)) {
					t.Errorf("size %d: %s = %v, want ErrSizeMismatch", size, name, err)
				}
			}
		}
		release(t, a)
		release(t, b)
		// Once the slots are free, another size may use them.
		l, err := w.semaphore("pool", 5).TryAcquire(ctx)
		if err != nil {
			t.Fatalf("size 5 after the size-3 holders released: %v", err)
		}
		release(t, l)
	})
}

// A holder that stops refreshing loses its slot at its deadline, and the
// slot is taken over once it has expired by server time.
func TestSemaphoreExpiredSlotTakenOver(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		const ttl = 10 * time.Second
		crashed := w.semaphore("pool", 2, dimutex.WithTTL(ttl), dimutex.WithRefreshInterval(0), dimutex.WithOwner("crashed"))
		a, _ := crashed.TryAcquire(ctx)
		b, _ := crashed.TryAcquire(ctx)
		s := w.semaphore("pool", 2, dimutex.WithOwner("heir"))
		if _, err := s.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
			t.Fatalf("TryAcquire while both slots are live = %v", err)
		}
		start := time.Now()
		l, err := s.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took <= ttl+dimutex.Margin || took > ttl+dimutex.Margin+time.Second {
			t.Errorf("took over after %v, want in (TTL+1s, TTL+2s]", took)
		}
		if a.Err() != dimutex.ErrLost || b.Err() != dimutex.ErrLost {
			t.Errorf("the crashed holders' leases: %v, %v; want ErrLost", a.Err(), b.Err())
		}
		if l.Token() == a.Token() || l.Token() == b.Token() {
			t.Error("the heir has a crashed holder's token")
		}
		release(t, l)
	})
}

// Release frees the slot for the next; Do holds a slot while fn runs; a
// slot's name holding an object that is not a lock is ErrNotALock.
func TestSemaphoreReleaseDoAndNotALock(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		w := newWorld(t)
		ctx := context.Background()
		s := w.semaphore("pool", 1)
		l, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.TryAcquire(ctx); !errors.Is(err, dimutex.ErrAlreadyAcquired) {
			t.Errorf("second TryAcquire of a semaphore of 1 = %v", err)
		}
		release(t, l)
		if l.Err() != dimutex.ErrAlreadyReleased {
			t.Errorf("Err = %v", l.Err())
		}
		ran := false
		err = s.Do(ctx, func(ctx context.Context) error {
			sts, err := s.Inspect(ctx)
			ran = err == nil && sts[0].Held
			return nil
		})
		if err != nil || !ran {
			t.Errorf("Do = %v; fn ran holding the slot: %v", err, ran)
		}
		if objs := w.srv.Objects(bucket, ""); len(objs) != 0 {
			t.Errorf("Do left %d objects", len(objs))
		}

		put, _ := w.srv.PutObject(bucket, "pool/slot-000", []byte("x"), nil)
		w.srv.ClearRequests()
		_, err = s.TryAcquire(ctx)
		var nl *dimutex.NotALockError
		if !errors.As(err, &nl) || nl.Lock != ref("pool/slot-000") {
			t.Errorf("TryAcquire with a foreign object at a slot = %v, want ErrNotALock naming the slot", err)
		}
		if got := summary(w.requests("")); got != "list=1" {
			t.Errorf("TryAcquire sent %s, want list=1", got)
		}
		if obj, _ := w.object("pool/slot-000"); obj.Generation != put.Generation {
			t.Error("the foreign object was overwritten")
		}
	})
}
