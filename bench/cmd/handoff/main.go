// Command handoff measures a lock passed between N+1 workers: N waiters
// and one holder, the holder releasing every hold period. It prints a
// markdown table, one row per N.
//
// Every worker has its own Mutex and its own http.Client, as separate
// processes would, and marks its requests with a header. A middleware in
// front of an in-process fake-gcs-server serialises the requests for the
// lock object and, knowing the lock's true state before and after each one,
// classifies every write (see tracker).
//
// Each worker loops: Acquire; hold; Release; then wait, outside Acquire,
// until another worker has acquired the lock, and Acquire again. So while
// the lock is held exactly N workers wait in Acquire, and a releaser cannot
// barge back in before a waiter gets its turn.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/bench/internal/emu"
)

const lockName = "bench/handoff"

func main() {
	var (
		ns       = flag.String("n", "1,2,4,8,16,32,64", "numbers of waiters")
		handoffs = flag.Int("handoffs", 30, "handoffs to measure per N")
		window   = flag.Duration("window", 10*time.Second, "longest measurement per N")
		hold     = flag.Duration("hold", 200*time.Millisecond, "how long each holder holds the lock")
		backoff  = flag.String("backoff", "", `"min,max" for WithBackoff; empty for the library's default`)
		timeout  = flag.Duration("timeout", 60*time.Second, "hard limit per N")
	)
	flag.Parse()
	var opts []dimutex.Option
	label := fmt.Sprintf("library defaults (TTL %v, backoff %v..%v)", dimutex.DefaultTTL, dimutex.DefaultMinBackoff, dimutex.DefaultMaxBackoff)
	if *backoff != "" {
		lo, hi, ok := strings.Cut(*backoff, ",")
		min, err1 := time.ParseDuration(lo)
		max, err2 := time.ParseDuration(hi)
		if !ok || err1 != nil || err2 != nil {
			fatal(fmt.Errorf("bad -backoff %q", *backoff))
		}
		opts = append(opts, dimutex.WithBackoff(min, max))
		label = fmt.Sprintf("TTL %v, WithBackoff(%v, %v)", dimutex.DefaultTTL, min, max)
	}
	fmt.Printf("Hold %v; up to %d handoffs or %v per N, whichever comes first; %s.\n\n", *hold, *handoffs, *window, label)
	fmt.Println("| waiters N | handoffs | handoff median | handoff p99 ¹ | reads/s | writes/s | reads per handoff | writes per handoff | arrival attempts (412) | create races lost | writes after a live read (must be 0) | writes while live, total | expired takeovers |")
	fmt.Println("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	failed := false
	for _, f := range strings.Split(*ns, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			fatal(fmt.Errorf("bad -n %q", *ns))
		}
		fmt.Fprintf(os.Stderr, "handoff: N=%d ...\n", n)
		s, err := run(n, *handoffs, *window, *hold, *timeout, opts)
		if err != nil {
			fmt.Fprintf(os.Stderr, "handoff: N=%d: %v\n", n, err)
			failed = true
		}
		if s == nil {
			fmt.Printf("| %d | failed: %v |\n", n, err)
			continue
		}
		secs := s.window.Seconds()
		h := float64(len(s.latencies))
		fmt.Printf("| %d | %d | %s | %s | %.1f | %.1f | %.1f | %.2f | %d | %d | **%d** | %d | %d |\n",
			n, len(s.latencies), ms(quantile(s.latencies, 0.5)), ms(quantile(s.latencies, 0.99)),
			float64(s.reads)/secs, float64(s.writes)/secs, float64(s.reads)/h, float64(s.writes)/h,
			s.arrivalsLive, s.racesLost, s.afterLiveRead, s.writesWhileLive, s.takeovers)
		if s.afterLiveRead != 0 || s.takeovers != 0 || s.foreign != 0 {
			failed = true
		}
	}
	fmt.Println()
	fmt.Println("¹ Nearest-rank quantile; with fewer than 100 handoffs the p99 is the largest handoff seen.")
	if failed {
		fmt.Fprintln(os.Stderr, "handoff: FAILED: a run failed, or a waiter wrote after reading a live lease")
		os.Exit(1)
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "handoff:", err)
	os.Exit(2)
}

func ms(d time.Duration) string { return fmt.Sprintf("%.1f ms", float64(d)/1e6) }

func quantile(xs []time.Duration, q float64) time.Duration {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	i := int(float64(len(s))*q+0.999999) - 1 // nearest rank
	return s[max(0, min(i, len(s)-1))]
}

// header identifies a worker's requests to the tracker.
const header = "X-Bench-Client"

type tagged struct {
	id   string
	next http.RoundTripper
}

func (t tagged) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(header, t.id)
	return t.next.RoundTrip(req)
}

// run measures one N.
func run(n, handoffs int, window, hold, timeout time.Duration, opts []dimutex.Option) (*stats, error) {
	tr := &tracker{ttl: dimutex.DefaultTTL, clients: map[string]*clientState{}}
	srv, err := emu.StartInProcess(func(h http.Handler) http.Handler { tr.next = h; return tr })
	if err != nil {
		return nil, err
	}
	defer srv.Stop()

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	stop, stopAll := context.WithCancel(ctx) // ends the measurement
	defer stopAll()

	var (
		mu       sync.Mutex
		cond     = sync.NewCond(&mu)
		acquired int // acquisitions so far
		first    time.Time
	)
	wake := context.AfterFunc(stop, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer wake()

	errs := make(chan error, n+1)
	var wg sync.WaitGroup
	var lost atomic.Int64
	for i := range n + 1 {
		id := fmt.Sprintf("w%02d", i)
		hc := &http.Client{Transport: tagged{id, http.DefaultTransport.(*http.Transport).Clone()}}
		defer hc.CloseIdleConnections()
		m, err := dimutex.NewGCS(emu.Bucket, lockName, append([]dimutex.Option{
			dimutex.WithEndpoint(srv.URL), dimutex.WithHTTPClient(hc), dimutex.WithOwner(id),
		}, opts...)...)
		if err != nil {
			return nil, err
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				l, err := m.Acquire(stop)
				if err != nil {
					if stop.Err() == nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						stopAll()
					}
					return
				}
				mu.Lock()
				acquired++
				mine := acquired
				if mine == 1 {
					first = time.Now()
				}
				done := mine > handoffs || time.Since(first) > window
				cond.Broadcast()
				mu.Unlock()
				if done {
					stopAll()
				} else {
					select {
					case <-time.After(hold):
					case <-stop.Done():
					}
				}
				select {
				case <-l.Done():
					lost.Add(1)
				default:
				}
				rctx, rcancel := context.WithTimeout(ctx, 10*time.Second)
				err = l.Release(rctx)
				rcancel()
				if err != nil {
					errs <- fmt.Errorf("%s: release: %w", id, err)
					stopAll()
					return
				}
				// Wait outside Acquire until someone else holds the lock.
				mu.Lock()
				for acquired == mine && stop.Err() == nil {
					cond.Wait()
				}
				mu.Unlock()
				if stop.Err() != nil {
					return
				}
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-ctx.Done():
		// Give the workers a moment to notice, then report what we have.
		select {
		case <-finished:
		case <-time.After(15 * time.Second):
			return nil, fmt.Errorf("workers did not stop within %v", timeout+15*time.Second)
		}
	}
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if ctx.Err() != nil {
		all = append(all, fmt.Errorf("hard timeout of %v reached", timeout))
	}
	if lost.Load() > 0 {
		all = append(all, fmt.Errorf("%d leases were lost", lost.Load()))
	}
	return tr.stats(), errors.Join(all...)
}
