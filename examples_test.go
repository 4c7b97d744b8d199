package dimutex_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

// The examples run against dimutextest, an in-memory GCS, as a test of
// yours can: the two options below point a lock at it. Against GCS, leave
// them out.

// The seed's example: take the lock if it is free, and give up at once if
// another process holds it.
func ExampleMutex_TryAcquire() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	m, err := dimutex.NewGCS("my-bucket", "examples/try-acquire",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.TryAcquire(ctx)
	if errors.Is(err, dimutex.ErrAlreadyAcquired) {
		fmt.Println("already acquired")
		return
	}
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)

	// A second attempt, from this or any other process, finds it held.
	_, err = m.TryAcquire(ctx)
	fmt.Println(errors.Is(err, dimutex.ErrAlreadyAcquired))
	// Output: true
}

// Acquire waits, reading the lock without writing, until it is free.
func ExampleMutex_Acquire() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := dimutex.NewGCS("my-bucket", "examples/acquire", dimutex.WithTTL(30*time.Second),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("held:", lease.Err() == nil)
	if err := lease.Release(ctx); err != nil {
		log.Fatal(err)
	}
	fmt.Println("released:", lease.Err())
	// Output:
	// held: true
	// released: dimutex: already released
}

// Do runs a function under the lock. Its ctx is cancelled if the lease is
// lost, so the work stops instead of running unprotected.
func ExampleMutex_Do() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	m, err := dimutex.NewGCS("my-bucket", "examples/do",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	err = m.Do(context.Background(), func(ctx context.Context) error {
		// ... work that must not run twice at once, watching ctx ...
		return ctx.Err()
	})
	fmt.Println(err)
	// Output: <nil>
}

// Inside Do, LeaseFromContext gives the function its lease, and with it the
// fencing token to send along with its writes.
func ExampleLeaseFromContext() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	m, err := dimutex.NewGCS("my-bucket", "examples/fenced",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	err = m.Do(context.Background(), func(ctx context.Context) error {
		token := dimutex.LeaseFromContext(ctx).Token()
		// ... write to the protected store, which refuses tokens smaller
		// than the largest it has seen ...
		fmt.Println(token > 0)
		return nil
	})
	fmt.Println(err)
	// Output:
	// true
	// <nil>
}

// The fencing token lets the protected resource refuse stale holders: it
// remembers the largest token it has seen and rejects smaller ones.
func ExampleLease_Token() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	m, err := dimutex.NewGCS("my-bucket", "examples/token",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	first, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	first.Release(ctx)
	second, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer second.Release(ctx)
	fmt.Println(second.Token() > first.Token())
	// Output: true
}

// Done and Err tell a holder that its lease has ended.
func ExampleLease_Done() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	m, err := dimutex.NewGCS("my-bucket", "examples/done",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	go lease.Release(ctx)
	<-lease.Done()
	fmt.Println(lease.Err())
	// Output: dimutex: already released
}

// Inspect reads who holds a lock, without writing.
func ExampleMutex_Inspect() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	m, err := dimutex.NewGCS("my-bucket", "examples/inspect", dimutex.WithOwner("nightly-backup@host-1"),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer lease.Release(ctx)
	st, err := m.Inspect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(st.Held, st.Owner, st.Token == lease.Token())
	// Output: true nightly-backup@host-1 true
}

// A leader publishes a value, here its address, and anyone reads who leads
// with one request.
func ExampleElection_Campaign() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	e, err := dimutex.NewElection("my-bucket", "examples/primary", dimutex.WithOwner("node-1"),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := e.Campaign(ctx, "10.0.0.1:5432")
	if err != nil {
		log.Fatal(err)
	}
	leader, err := e.Leader(ctx)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(leader.Owner, leader.Value, leader.Token == lease.Token())

	// Resign.
	if err := lease.Release(ctx); err != nil {
		log.Fatal(err)
	}
	_, err = e.Leader(ctx)
	fmt.Println(errors.Is(err, dimutex.ErrNoLeader))
	// Output:
	// node-1 10.0.0.1:5432 true
	// true
}

// A follower observes the leadership: the current leader first, then each
// change. It only reads.
func ExampleElection_Observe() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	leader, err := dimutex.NewElection("my-bucket", "examples/primary", dimutex.WithOwner("node-1"),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := leader.Campaign(ctx, "10.0.0.1:5432")
	if err != nil {
		log.Fatal(err)
	}

	// The follower polls every 10 to 100 ms here; the default is 100 ms
	// to 5 s.
	follower, err := dimutex.NewElection("my-bucket", "examples/primary",
		dimutex.WithBackoff(10*time.Millisecond, 100*time.Millisecond),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	seen := 0
	for l, err := range follower.Observe(ctx) {
		if err != nil {
			log.Fatal(err)
		}
		if l.Token == 0 {
			fmt.Println("no leader")
		} else {
			fmt.Printf("%s leads at %s\n", l.Owner, l.Value)
		}
		seen++
		switch seen {
		case 1:
			lease.Proclaim(ctx, "10.0.0.9:5432") // the leader moves
		case 2:
			lease.Release(ctx) // and resigns
		}
		if seen == 3 {
			break
		}
	}
	// Output:
	// node-1 leads at 10.0.0.1:5432
	// node-1 leads at 10.0.0.9:5432
	// no leader
}

// Run is the leader loop: it campaigns, runs fn while leading (campaigning
// again if the leadership is lost), and resigns when fn returns or ctx
// ends.
func ExampleElection_Run() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	e, err := dimutex.NewElection("my-bucket", "examples/scheduler",
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	err = e.Run(ctx, "scheduler-7", func(ctx context.Context) error {
		fmt.Println("leading")
		// ... schedule jobs until ctx ends (leadership lost) or done ...
		return nil
	})
	fmt.Println("Run:", err)
	_, err = e.Leader(ctx)
	fmt.Println("resigned:", errors.Is(err, dimutex.ErrNoLeader))
	// Output:
	// leading
	// Run: <nil>
	// resigned: true
}

// At most two hold the semaphore at once; a third finds it full until one
// releases.
func ExampleSemaphore_Acquire() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	s, err := dimutex.NewSemaphore("my-bucket", "examples/encoders", 2,
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	a, err := s.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	b, err := s.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Release(ctx)
	_, err = s.TryAcquire(ctx)
	fmt.Println("full:", errors.Is(err, dimutex.ErrAlreadyAcquired))

	a.Release(ctx)
	c, err := s.Acquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Release(ctx)
	fmt.Println("acquired after a release:", c.Err() == nil)
	// Output:
	// full: true
	// acquired after a release: true
}

// Inspect reads every slot with one request: one Status per slot, which
// describes its holder if it is held.
func ExampleSemaphore_Inspect() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	s, err := dimutex.NewSemaphore("my-bucket", "examples/pool", 3, dimutex.WithOwner("worker@host-1"),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	for range 2 {
		lease, err := s.Acquire(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer lease.Release(ctx)
	}
	sts, err := s.Inspect(ctx)
	if err != nil {
		log.Fatal(err)
	}
	var holders []string
	for _, st := range sts {
		fmt.Println(st.Name)
		if st.Held {
			holders = append(holders, st.Owner)
		}
	}
	fmt.Printf("%d of %d held, by %q\n", len(holders), s.Size(), holders)
	// Output:
	// examples/pool/slot-000
	// examples/pool/slot-001
	// examples/pool/slot-002
	// 2 of 3 held, by ["worker@host-1" "worker@host-1"]
}

// A Trace sees every request and every change of a lease: here printed,
// usually counted as metrics.
func ExampleWithTrace() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	trace := &dimutex.Trace{
		Request:  func(e dimutex.RequestEvent) { fmt.Println("request:", e.Op, e.Status) },
		Acquired: func(e dimutex.AcquireEvent) { fmt.Println("acquired:", e.Lock, "after", e.Writes, "write") },
		Released: func(e dimutex.ReleaseEvent) { fmt.Println("released:", e.Lock, e.Err) },
	}
	m, err := dimutex.NewGCS("my-bucket", "examples/traced", dimutex.WithTrace(trace),
		dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client()))
	if err != nil {
		log.Fatal(err)
	}
	lease, err := m.TryAcquire(ctx)
	if err != nil {
		log.Fatal(err)
	}
	if err := lease.Release(ctx); err != nil {
		log.Fatal(err)
	}
	// Output:
	// request: insert 200
	// acquired: gs://my-bucket/examples/traced after 1 write
	// request: delete 204
	// released: gs://my-bucket/examples/traced <nil>
}

// List reads every lock under a prefix with one request, for an operator's
// overview: locks, semaphore slots, and other objects, which are never
// touched.
func ExampleList() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("my-bucket"))
	ctx := context.Background()
	opts := []dimutex.Option{dimutex.WithEndpoint(srv.URL()), dimutex.WithHTTPClient(srv.Client())}
	for _, job := range []string{"backup", "report"} {
		m, err := dimutex.NewGCS("my-bucket", "jobs/"+job, append(opts, dimutex.WithOwner(job+"@host-1"))...)
		if err != nil {
			log.Fatal(err)
		}
		lease, err := m.Acquire(ctx)
		if err != nil {
			log.Fatal(err)
		}
		defer lease.Release(ctx)
	}
	srv.PutObject("my-bucket", "jobs/README.txt", []byte("one lock per job\n"), nil)

	sts, err := dimutex.List(ctx, "my-bucket", "jobs/", opts...)
	if err != nil {
		log.Fatal(err)
	}
	for _, st := range sts {
		switch {
		case st.NotALock:
			fmt.Println(st.Name, "is not a lock")
		case st.Held:
			fmt.Println(st.Name, "held by", st.Owner)
		default:
			fmt.Println(st.Name, "expired")
		}
	}
	// Output:
	// jobs/README.txt is not a lock
	// jobs/backup held by backup@host-1
	// jobs/report held by report@host-1
}
