// Command demo shows dimutex at work: eight workers share one lock for five
// turns each, one holder crashes on purpose, and the lock passes to the next
// worker once the crashed lease's TTL has run out by the server's clock.
//
//	go run ./examples/demo
//
// By default the workers share dimutextest, the project's in-memory GCS,
// served on 127.0.0.1 in process, so the demo needs nothing else. With
// STORAGE_EMULATOR_HOST set it uses that emulator instead (fake-gcs-server,
// or Google's storage-testbench), and creates its bucket there.
package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

const (
	bucket  = "dimutex-demo"
	workers = 8
	turns   = 5
	ttl     = 2 * time.Second
	// The worker that crashes, and on which of its turns.
	crashWorker, crashTurn = 3, 1
)

// turn is one holding of the lock.
type turn struct {
	worker   int
	token    int64
	acquired time.Time
	released time.Time // for the crashed turn: when its lease ran out
	crashed  bool
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// serve returns the options that point the workers at a server: none for
// the emulator named by STORAGE_EMULATOR_HOST, on which it creates the
// demo's bucket, or else an in-memory GCS served on 127.0.0.1, which stop
// shuts down.
func serve() (opts []dimutex.Option, stop func(), err error) {
	host := os.Getenv("STORAGE_EMULATOR_HOST")
	if host == "" {
		srv := httptest.NewServer(dimutextest.NewServer(dimutextest.WithBucket(bucket)))
		fmt.Printf("an in-memory GCS (package dimutextest) at %s\n", srv.URL)
		return []dimutex.Option{dimutex.WithEndpoint(srv.URL)}, srv.Close, nil
	}
	root := host
	if !strings.Contains(root, "://") {
		root = "http://" + root
	}
	resp, err := http.Post(root+"/storage/v1/b?project=demo", "application/json", strings.NewReader(`{"name":"`+bucket+`"}`))
	if err != nil {
		return nil, nil, fmt.Errorf("creating bucket %s on the emulator at %s: %w", bucket, host, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusConflict {
		return nil, nil, fmt.Errorf("creating bucket %s on the emulator at %s: %s", bucket, host, resp.Status)
	}
	fmt.Printf("the emulator at %s (STORAGE_EMULATOR_HOST)\n", host)
	return nil, func() {}, nil
}

func run() error {
	server, stop, err := serve()
	if err != nil {
		return err
	}
	defer stop()
	ctx, cancel := context.WithTimeout(context.Background(), 25*time.Second)
	defer cancel()

	start := time.Now()
	var (
		mu    sync.Mutex
		log   []turn
		wg    sync.WaitGroup
		errs  = make(chan error, workers)
		since = func(t time.Time) string { return fmt.Sprintf("%6.3fs", t.Sub(start).Seconds()) }
	)
	fmt.Printf("%d workers, %d turns each, one lock gs://%s/demo.lock, TTL %v\n\n", workers, turns, bucket, ttl)
	fmt.Println("   time  worker  event")
	for w := 1; w <= workers; w++ {
		opts := append([]dimutex.Option{
			dimutex.WithOwner(fmt.Sprintf("worker-%d", w)),
			dimutex.WithTTL(ttl),
			dimutex.WithBackoff(10*time.Millisecond, 250*time.Millisecond),
		}, server...)
		m, err := dimutex.NewGCS(bucket, "demo.lock", opts...)
		if err != nil {
			return err
		}
		// A crashed process stops refreshing its lease: this Mutex's leases
		// never refresh, so the one it holds runs out after the TTL.
		crashing, err := dimutex.NewGCS(bucket, "demo.lock", append(opts, dimutex.WithRefreshInterval(0))...)
		if err != nil {
			return err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := range turns {
				crash := w == crashWorker && n == crashTurn
				lock := m
				if crash {
					lock = crashing
				}
				lease, err := lock.Acquire(ctx)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				t := turn{worker: w, token: lease.Token(), acquired: time.Now()}
				fmt.Printf("%s  %6d  acquired  token %d\n", since(t.acquired), w, t.token)
				time.Sleep(30 * time.Millisecond) // the critical section

				if crash {
					// The holder dies without releasing: nothing refreshes
					// or deletes the lock object, so it stays until its TTL
					// runs out. The lease's Done stands in for the dead
					// process's own clock.
					fmt.Printf("%s  %6d  CRASHED   holding the lock; others wait for its TTL\n", since(time.Now()), w)
					<-lease.Done()
					t.released, t.crashed = time.Now(), true
					mu.Lock()
					log = append(log, t)
					mu.Unlock()
					return
				}
				t.released = time.Now()
				if err := lease.Release(ctx); err != nil {
					errs <- fmt.Errorf("worker %d: release: %w", w, err)
					return
				}
				fmt.Printf("%s  %6d  released\n", since(t.released), w)
				mu.Lock()
				log = append(log, t)
				mu.Unlock()
				// Other work, outside the lock, before the next turn.
				time.Sleep(time.Duration(50+rand.IntN(100)) * time.Millisecond)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		return err
	}
	return summarize(log)
}

// summarize checks the timeline for overlaps and prints the figures.
func summarize(log []turn) error {
	slices.SortFunc(log, func(a, b turn) int { return a.acquired.Compare(b.acquired) })
	var (
		overlaps  int
		handoffs  []time.Duration
		takeover  time.Duration
		increases = true
	)
	for i := 1; i < len(log); i++ {
		prev, cur := log[i-1], log[i]
		if cur.acquired.Before(prev.released) {
			overlaps++
		}
		if cur.token <= prev.token {
			increases = false
		}
		gap := cur.acquired.Sub(prev.released)
		if prev.crashed {
			// From the crash, not from when its lease ran out locally.
			takeover = cur.acquired.Sub(prev.acquired)
			continue
		}
		handoffs = append(handoffs, gap)
	}
	slices.Sort(handoffs)
	fmt.Println()
	fmt.Println("summary")
	fmt.Printf("  acquisitions          %d (%d workers × %d turns, and %d by the worker that crashed)\n",
		len(log), workers-1, turns, crashTurn+1)
	fmt.Printf("  overlaps              %d\n", overlaps)
	fmt.Printf("  tokens increasing     %v\n", increases)
	if len(handoffs) > 0 {
		fmt.Printf("  median handoff        %v (release to next acquire)\n", handoffs[len(handoffs)/2].Round(time.Millisecond))
	}
	fmt.Printf("  takeover after crash  %v (TTL %v + 1s safety margin + up to 1s, as the server's Date header counts whole seconds)\n",
		takeover.Round(time.Millisecond), ttl)
	if overlaps > 0 || !increases {
		return fmt.Errorf("mutual exclusion violated: %d overlaps, tokens increasing: %v", overlaps, increases)
	}
	return nil
}
