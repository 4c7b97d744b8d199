// Package tracescenario drives a Mutex through one script of events in
// virtual time, for the tests of the metrics adapters under contrib/, which
// check the series that the script produces.
package tracescenario

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

// Run drives a Mutex through a script in virtual time, inside a
// synctest bubble, with trace set on it. Every time below is exact:
//
//	t=0    Acquire on a free lock: insert 200; waited 0 s.
//	t=10   background refresh: insert 200.
//	t=20   background refresh: insert 503 after 250 ms, retried: insert 200.
//	t=25   someone deletes the lock object.
//	t=30   background refresh: insert 412; the read that tells why: get
//	       404; the lease is lost (deleted) after 30 s.
//	t=31   a holder that then crashes writes the lock, with a TTL of 30 s.
//	t=32   Acquire waits for it, reading every second (get 200 at t=32,
//	       33, ..., 63), and takes the expired lease over at t=63:
//	       insert 200; waited 31 s.
//	t=73   background refresh: insert 403, not retried: a failed refresh,
//	       tried again half a second to a second later: insert 200.
//	t=78   Release: delete 204; held 15 s.
//
// The retries' random backoffs move no event that the metrics time: the
// retried 503 was the refresh's first attempt, from which the lease's next
// refresh is scheduled, and nothing is scheduled after the retried 403
// before the release.
//
// checkpoint, if not nil, is called at "acquired" (t=0), "lost" (t=30),
// "taken over" (t=63) and "released" (t=78).
func Run(t *testing.T, trace *dimutex.Trace, checkpoint func(string)) {
	t.Helper()
	srv := dimutextest.NewServer(dimutextest.WithBucket("b-test"))
	var mu sync.Mutex
	var next *dimutextest.Fault // the fault of the next insert, once
	failNextInsert := func(f dimutextest.Fault) {
		mu.Lock()
		defer mu.Unlock()
		next = &f
	}
	srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if r.Op != "insert" || next == nil {
			return dimutextest.Fault{}
		}
		f := *next
		next = nil
		return f
	})
	m, err := dimutex.NewGCS("b-test", "lock",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()),
		dimutex.WithTTL(30*time.Second),               // refreshed every 10 s
		dimutex.WithBackoff(time.Second, time.Second), // a waiter reads every second
		dimutex.WithOwner("worker-1"),
		dimutex.WithTrace(trace))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	start := time.Now()
	at := func(want time.Duration) {
		t.Helper()
		if got := time.Since(start); got != want {
			t.Fatalf("the scenario is at t=%v; want t=%v", got, want)
		}
	}

	if checkpoint == nil {
		checkpoint = func(string) {}
	}

	l1, err := m.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	checkpoint("acquired")
	time.Sleep(15 * time.Second)
	failNextInsert(dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 503, Latency: 250 * time.Millisecond})
	time.Sleep(10 * time.Second)
	at(25 * time.Second)
	if !srv.DeleteObject("b-test", "lock") {
		t.Fatal("the lock object is missing at t=25s")
	}
	<-l1.Done()
	// Done closes just before the Lost hook is called, on the lease's
	// goroutine: let it run.
	synctest.Wait()
	at(30 * time.Second)
	checkpoint("lost")

	time.Sleep(time.Second)
	if _, err := srv.PutObject("b-test", "lock", []byte("crashed"), map[string]string{
		"dimutex-lease": "00000000000000000000000000000001",
		"dimutex-ttl":   "30000",
		"dimutex-owner": "crashed-host/1",
	}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second)
	l2, err := m.Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	at(63 * time.Second)
	checkpoint("taken over")
	time.Sleep(5 * time.Second)
	failNextInsert(dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 403})
	time.Sleep(10 * time.Second)
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	at(78 * time.Second)
	checkpoint("released")
}

// Semaphore acquires both slots of a semaphore of two, holds them for a
// second, then releases them; checkpoint is called with both held.
func Semaphore(t *testing.T, trace *dimutex.Trace, checkpoint func()) {
	t.Helper()
	srv := dimutextest.NewServer(dimutextest.WithBucket("b-test"))
	s, err := dimutex.NewSemaphore("b-test", "pool", 2,
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()),
		dimutex.WithTrace(trace))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var leases []*dimutex.Lease
	for range 2 {
		l, err := s.TryAcquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		leases = append(leases, l)
	}
	checkpoint()
	time.Sleep(time.Second)
	for _, l := range leases {
		if err := l.Release(ctx); err != nil {
			t.Fatal(err)
		}
	}
}
