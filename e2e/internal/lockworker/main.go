// Command lockworker is a test program: one OS process that uses a dimutex
// lock, so that tests can run many of them, crash them and pause them.
//
// In "sections" mode it runs critical sections and appends one JSON line per
// section to -out, but only after checking that its lease is still held. In
// "hold" mode it acquires, prints "acquired TOKEN", and holds the lock
// (refreshing) until it is killed or loses the lease, which it reports as
// "lost" and exit status 3.
//
// In "elect" mode it runs Election.Run on the election -name and, while it
// leads, appends a Validity line to -out every -check (see elect.go). In
// "semaphore" mode it takes a slot of the semaphore -name of -size slots,
// holds it for about -hold, releases it, and again, appending Validity
// lines while it holds (see semaphore.go). Both print what they do on
// stdout, one line per event, for the test to follow.
//
// Every request it sends is logged to stderr as "req UNIXNANO METHOD
// GENERATION", so that tests can see what a paused process sent.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"sync"
	"time"

	"github.com/dimutex/dimutex"
)

// Section is one critical section, as the checker reads it.
type Section struct {
	Worker int   `json:"worker"`
	Token  int64 `json:"token"`
	Start  int64 `json:"start"` // unix nanoseconds
	End    int64 `json:"end"`
}

// Loss is a lease that ended by loss during a section.
type Loss struct {
	Worker int   `json:"worker"`
	Token  int64 `json:"token"`
	// LostAt and Deadline are unix nanoseconds: how long before its
	// deadline the loss was signalled.
	LostAt   int64 `json:"lost_at"`
	Deadline int64 `json:"deadline"`
}

func main() {
	var (
		mode     = flag.String("mode", "sections", "sections, hold, elect or semaphore")
		endpoint = flag.String("endpoint", "", "JSON API endpoint")
		bucket   = flag.String("bucket", "", "bucket")
		name     = flag.String("name", "", "lock object name")
		id       = flag.Int("id", 0, "worker id")
		sections = flag.Int("sections", 10, "critical sections to run")
		ttl      = flag.Duration("ttl", 2*time.Second, "lease TTL")
		attempt  = flag.Duration("attempt-timeout", 500*time.Millisecond, "per-request timeout")
		work     = flag.Duration("work", 20*time.Millisecond, "length of a critical section")
		out      = flag.String("out", "", "file to append section records to")
		timeout  = flag.Duration("timeout", 5*time.Minute, "give up after this long")
		size     = flag.Int("size", 3, "semaphore mode: the number of slots")
		holdFor  = flag.Duration("hold", 300*time.Millisecond, "semaphore mode: how long to hold a slot, on average")
		check    = flag.Duration("check", 25*time.Millisecond, "elect and semaphore modes: how often a holder checks and logs its validity")
		minBack  = flag.Duration("backoff-min", 20*time.Millisecond, "WithBackoff's min")
		maxBack  = flag.Duration("backoff-max", 500*time.Millisecond, "WithBackoff's max")
	)
	flag.Parse()
	opts := []dimutex.Option{
		dimutex.WithEndpoint(*endpoint),
		dimutex.WithOwner(fmt.Sprintf("lockworker-%d/pid-%d", *id, os.Getpid())),
		dimutex.WithTTL(*ttl),
		dimutex.WithAttemptTimeout(*attempt),
		dimutex.WithBackoff(*minBack, *maxBack),
		dimutex.WithHTTPClient(&http.Client{Transport: &logTransport{next: http.DefaultTransport}}),
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	var err error
	switch *mode {
	case "elect":
		err = elect(ctx, *bucket, *name, *id, *check, *out, opts)
	case "semaphore":
		err = semaphore(ctx, *bucket, *name, *size, *id, *holdFor, *check, *out, opts)
	}
	if *mode == "elect" || *mode == "semaphore" {
		if err != nil {
			fail(err)
		}
		return
	}
	m, err := dimutex.NewGCS(*bucket, *name, opts...)
	if err != nil {
		fail(err)
	}
	switch *mode {
	case "sections":
		err = runSections(ctx, m, *id, *sections, *work, *out)
	case "hold":
		err = hold(ctx, m)
	default:
		err = fmt.Errorf("unknown mode %q", *mode)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "lockworker:", err)
	if errors.Is(err, dimutex.ErrLost) {
		os.Exit(3)
	}
	os.Exit(1)
}

func runSections(ctx context.Context, m *dimutex.Mutex, id, n int, work time.Duration, out string) error {
	f, err := os.OpenFile(out, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	for done := 0; done < n; {
		l, err := m.Acquire(ctx)
		if err != nil {
			return err
		}
		s := Section{Worker: id, Token: l.Token(), Start: time.Now().UnixNano()}
		lost := watch(l)
		time.Sleep(work/2 + rand.N(work))
		s.End = time.Now().UnixNano()
		// Keep the section only if the lease held throughout: the check is
		// what a fenced resource would do with the token.
		var line []byte
		if l.Err() == nil && time.Now().Before(l.Deadline()) {
			line, _ = json.Marshal(s)
			done++
		} else {
			<-l.Done()
			line, _ = json.Marshal(struct {
				Loss Loss `json:"loss"`
			}{Loss{Worker: id, Token: l.Token(), LostAt: <-lost, Deadline: l.Deadline().UnixNano()}})
		}
		if _, err := f.Write(append(line, '\n')); err != nil {
			return err
		}
		// ErrNotReleased is no failure here: the section ran under a valid
		// lease, and the lock left behind expires, which the next Acquire
		// waits out. (With a TTL of 2 s, a 429 on the delete, retried after
		// at least a second, can use up the lease.)
		if err := l.Release(ctx); err != nil && !errors.Is(err, dimutex.ErrLost) && !errors.Is(err, dimutex.ErrNotReleased) {
			return err
		}
	}
	return nil
}

// watch returns a channel that yields when l's Done closed, in unix
// nanoseconds, once it has.
func watch(l *dimutex.Lease) <-chan int64 {
	at := make(chan int64, 1)
	go func() {
		<-l.Done()
		at <- time.Now().UnixNano()
	}()
	return at
}

func hold(ctx context.Context, m *dimutex.Mutex) error {
	l, err := m.Acquire(ctx)
	if err != nil {
		return err
	}
	fmt.Printf("acquired %d\n", l.Token())
	select {
	case <-l.Done():
		fmt.Printf("lost %d deadline %d\n", time.Now().UnixNano(), l.Deadline().UnixNano())
		return l.Release(ctx)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// logTransport logs every request to stderr before sending it.
type logTransport struct {
	next http.RoundTripper
	mu   sync.Mutex
}

func (t *logTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	gen := req.URL.Query().Get("ifGenerationMatch")
	if gen == "" {
		gen = "-"
	}
	t.mu.Lock()
	fmt.Fprintf(os.Stderr, "req %d %s %s\n", time.Now().UnixNano(), req.Method, gen)
	t.mu.Unlock()
	return t.next.RoundTrip(req)
}
