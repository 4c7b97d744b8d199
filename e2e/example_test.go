package e2e_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"time"

	"github.com/dimutex/dimutex"
)

// The seed's example: take the lock if it is free, and give up at once if
// another process holds it.
func ExampleMutex_TryAcquire() {
	ctx := context.Background()
	m, err := dimutex.NewGCS(exampleBucket, "examples/try-acquire")
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
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := dimutex.NewGCS(exampleBucket, "examples/acquire", dimutex.WithTTL(30*time.Second))
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
	m, err := dimutex.NewGCS(exampleBucket, "examples/do")
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

// The fencing token lets the protected resource refuse stale holders: it
// remembers the largest token it has seen and rejects smaller ones.
func ExampleLease_Token() {
	ctx := context.Background()
	m, err := dimutex.NewGCS(exampleBucket, "examples/token")
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
	ctx := context.Background()
	m, err := dimutex.NewGCS(exampleBucket, "examples/done")
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
	ctx := context.Background()
	m, err := dimutex.NewGCS(exampleBucket, "examples/inspect", dimutex.WithOwner("nightly-backup@host-1"))
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
