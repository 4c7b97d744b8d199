package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/dimutex/dimutex"
)

// Validity is one line of -out in the elect and semaphore modes: the
// holder of Token (on Slot, for a semaphore) was valid from Start to End,
// unix nanoseconds. Start is when its Campaign (Acquire) returned, or just
// after; End is an instant at which it checked, before writing the line,
// that its leadership was still valid. A holder writes a line every check
// interval, each with the same Start and a later End, and stops at its
// first failed check, so a process killed at any moment has logged only
// what it had checked. The checker takes the largest End per token.
type Validity struct {
	Worker int    `json:"worker"`
	PID    int    `json:"pid"`
	Slot   string `json:"slot,omitempty"`
	Token  int64  `json:"token"`
	Start  int64  `json:"start"`
	End    int64  `json:"end"`
}

// validityLog appends Validity lines to a file that other processes append
// to as well: each line is one write(2) on an O_APPEND file, so lines never
// interleave.
type validityLog struct {
	f *os.File
}

func openValidityLog(path string) (*validityLog, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	return &validityLog{f: f}, nil
}

func (v *validityLog) write(rec Validity) error {
	line, _ := json.Marshal(rec)
	_, err := v.f.Write(append(line, '\n'))
	return err
}

// leadership follows this process's leadership through the Trace of its
// Election, since Election.Run hands fn a context but not the Lease: the
// token (Acquired), a deadline no later than the Lease's (the start of the
// write that last extended it, plus the TTL), and whether the lease has
// ended (Lost, Released), which the Trace reports before Done closes.
type leadership struct {
	ttl time.Duration

	mu    sync.Mutex
	token int64
	base  time.Time // the last successful write started no earlier than this
	ended bool
	// For the acquiring write under way: the start of its first attempt,
	// and that same start once an attempt may have landed unseen (the
	// lease may date from that write). A new write (attempt 1) starts
	// both afresh: a write that may have landed and was followed by
	// another is settled (the library read the object before moving on),
	// and keeping its time would date a later lease too early, so that
	// its holder would never log itself valid (seen on the testbench,
	// whose answers can take longer than the 500 ms attempt timeout).
	lastInsert, firstMaybe time.Time
}

// slack is taken off the deadline so that it is surely no later than the
// Lease's: the library stamps a write's send time a few microseconds
// before the attempt whose start the Trace reports.
const slack = time.Millisecond

func (ld *leadership) trace() *dimutex.Trace {
	return &dimutex.Trace{
		Request: func(e dimutex.RequestEvent) {
			if e.Op != "insert" || e.Token != 0 {
				return // not an acquiring write
			}
			start := time.Now().Add(-e.Duration)
			ld.mu.Lock()
			defer ld.mu.Unlock()
			if e.Attempt == 1 {
				ld.lastInsert, ld.firstMaybe = start, time.Time{}
			}
			if e.MayHaveApplied && ld.firstMaybe.IsZero() {
				ld.firstMaybe = ld.lastInsert
			}
		},
		Acquired: func(e dimutex.AcquireEvent) {
			ld.mu.Lock()
			defer ld.mu.Unlock()
			base := ld.lastInsert
			if !ld.firstMaybe.IsZero() && ld.firstMaybe.Before(base) {
				base = ld.firstMaybe
			}
			ld.token, ld.base, ld.ended = e.Token, base.Add(-slack), false
			ld.lastInsert, ld.firstMaybe = time.Time{}, time.Time{}
		},
		Refreshed: func(e dimutex.RefreshEvent) {
			start := time.Now().Add(-e.Latency - slack)
			ld.mu.Lock()
			defer ld.mu.Unlock()
			if e.Token == ld.token && start.After(ld.base) {
				ld.base = start
			}
		},
		Lost: func(e dimutex.LossEvent) { ld.end(e.Token) },
		Released: func(e dimutex.ReleaseEvent) {
			ld.end(e.Token)
		},
	}
}

func (ld *leadership) end(token int64) {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	if token == ld.token {
		ld.ended = true
	}
}

// validAt reports whether the leadership of token was valid at now, an
// instant read before the call.
func (ld *leadership) validAt(token int64, now time.Time) bool {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.token == token && !ld.ended && now.Before(ld.base.Add(ld.ttl))
}

func (ld *leadership) current() int64 {
	ld.mu.Lock()
	defer ld.mu.Unlock()
	return ld.token
}

// elect campaigns with Election.Run until ctx ends. While it leads, it
// logs its validity every check. It prints "leading TOKEN STARTNANOS" when
// it starts to lead and "lost TOKEN" when fn's context ends.
func elect(ctx context.Context, bucket, name string, id int, ttl, check time.Duration, out string, opts []dimutex.Option) error {
	vl, err := openValidityLog(out)
	if err != nil {
		return err
	}
	ld := &leadership{ttl: ttl}
	e, err := dimutex.NewElection(bucket, name, append(opts, dimutex.WithTrace(ld.trace()))...)
	if err != nil {
		return err
	}
	value := fmt.Sprintf("worker %d, pid %d", id, os.Getpid())
	err = e.Run(ctx, value, func(ctx context.Context) error {
		start := time.Now()
		token := ld.current()
		fmt.Printf("leading %d %d\n", token, start.UnixNano())
		t := time.NewTicker(check)
		defer t.Stop()
		logging := true
		for {
			now := time.Now()
			if logging && ld.validAt(token, now) {
				rec := Validity{Worker: id, PID: os.Getpid(), Token: token, Start: start.UnixNano(), End: now.UnixNano()}
				if err := vl.write(rec); err != nil {
					return err
				}
			} else {
				logging = false // valid no more: the rest is not this leadership's
			}
			select {
			case <-ctx.Done():
				fmt.Printf("lost %d\n", token)
				return context.Cause(ctx)
			case <-t.C:
			}
		}
	})
	if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
		return nil // -timeout
	}
	return err
}
