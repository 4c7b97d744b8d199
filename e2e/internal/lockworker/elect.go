package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
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

// elect campaigns with Election.Run until ctx ends. While it leads, it
// logs its validity every check. It prints "leading TOKEN STARTNANOS" when
// it starts to lead and "lost TOKEN" when fn's context ends.
func elect(ctx context.Context, bucket, name string, id int, check time.Duration, out string, opts []dimutex.Option) error {
	vl, err := openValidityLog(out)
	if err != nil {
		return err
	}
	e, err := dimutex.NewElection(bucket, name, opts...)
	if err != nil {
		return err
	}
	value := fmt.Sprintf("worker %d, pid %d", id, os.Getpid())
	err = e.Run(ctx, value, func(ctx context.Context) error {
		l := dimutex.LeaseFromContext(ctx) // the leadership
		start := time.Now()
		token := l.Token()
		fmt.Printf("leading %d %d\n", token, start.UnixNano())
		t := time.NewTicker(check)
		defer t.Stop()
		logging := true
		for {
			now := time.Now()
			// Err is set before Done closes; Deadline is the lease's own.
			if logging && l.Err() == nil && now.Before(l.Deadline()) {
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
