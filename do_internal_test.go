package dimutex

// Do's fn cannot reach its Lease through the public API, so the case of an
// fn that releases the lease itself is tested here, on do, which Mutex.Do,
// Semaphore.Do and Election.Run share.

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"

	"github.com/dimutex/dimutex/dimutextest"
)

// An fn that releases its own lease is fine: do does not report the second
// Release's ErrAlreadyReleased, and sends no second delete.
func TestDoWhenFnReleasesItself(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket("do-bucket"))
		m, err := NewGCS("do-bucket", "lock", WithEndpoint(srv.URL()), WithHTTPClient(srv.Client()))
		if err != nil {
			t.Fatal(err)
		}
		ctx := context.Background()
		var lease *Lease
		acquire := func(ctx context.Context) (*Lease, error) {
			l, err := m.Acquire(ctx)
			lease = l
			return l, err
		}
		boom := errors.New("boom")
		err = do(ctx, acquire, func(ctx context.Context) error {
			if err := lease.Release(ctx); err != nil {
				t.Errorf("fn's Release = %v", err)
			}
			return boom
		})
		if !errors.Is(err, boom) || err.Error() != "boom" {
			t.Errorf("do = %v, want fn's error alone", err)
		}
		if lease.Err() != ErrAlreadyReleased {
			t.Errorf("Err = %v, want ErrAlreadyReleased", lease.Err())
		}
		deletes := 0
		for _, r := range srv.Requests() {
			if r.Op == "delete" {
				deletes++
			}
		}
		if deletes != 1 {
			t.Errorf("%d deletes, want 1", deletes)
		}
	})
}
