package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/dimutex/dimutex"
)

// semaphore takes a slot of the semaphore name of size slots, holds it for
// a random time around hold, logging its validity every check, releases
// it, and again, until ctx ends. It prints "acquired SLOT TOKEN" and
// "released SLOT TOKEN" (or "lost SLOT TOKEN").
func semaphore(ctx context.Context, bucket, name string, size, id int, hold, check time.Duration, out string, opts []dimutex.Option) error {
	vl, err := openValidityLog(out)
	if err != nil {
		return err
	}
	// The slot of an acquisition: the Trace reports it before Acquire
	// returns, on the same goroutine.
	var mu sync.Mutex
	var slot string
	trace := &dimutex.Trace{Acquired: func(e dimutex.AcquireEvent) {
		mu.Lock()
		defer mu.Unlock()
		slot = e.Lock[strings.LastIndex(e.Lock, "/")+1:]
	}}
	s, err := dimutex.NewSemaphore(bucket, name, size, append(opts, dimutex.WithTrace(trace))...)
	if err != nil {
		return err
	}
	for ctx.Err() == nil {
		l, err := s.Acquire(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		start := time.Now()
		mu.Lock()
		held := slot
		mu.Unlock()
		fmt.Printf("acquired %s %d\n", held, l.Token())
		until := start.Add(hold/2 + rand.N(hold))
		for {
			now := time.Now()
			// Err is set before Done closes; Deadline is the lease's own.
			if l.Err() != nil || !now.Before(l.Deadline()) {
				break
			}
			rec := Validity{Worker: id, PID: os.Getpid(), Slot: held, Token: l.Token(), Start: start.UnixNano(), End: now.UnixNano()}
			if err := vl.write(rec); err != nil {
				return err
			}
			if !now.Before(until) {
				break
			}
			time.Sleep(min(check, until.Sub(now)))
		}
		switch err := l.Release(context.WithoutCancel(ctx)); {
		case errors.Is(err, dimutex.ErrLost):
			fmt.Printf("lost %s %d\n", held, l.Token())
		case err != nil:
			return err
		default:
			fmt.Printf("released %s %d\n", held, l.Token())
		}
		// Let someone else in before trying again.
		time.Sleep(rand.N(hold / 4))
	}
	return nil
}
