package perop

import (
	"context"
	"errors"
	"testing"

	"cloud.google.com/go/storage"
	"google.golang.org/api/googleapi"

	"github.com/dimutex/dimutex/bench/internal/clients"
)

// TestClientsAreComparable checks what the benchmarks assume: both clients
// reach the same server, both honour the create precondition, and each
// sends one request per call.
func TestClientsAreComparable(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			ctx := context.Background()
			srv := server(t, mode)
			dhc, dcount := clients.NewHTTP()
			m, err := clients.Dimutex(srv.URL, bucket, "check/lock", dhc)
			if err != nil {
				t.Fatal(err)
			}
			l, err := m.Acquire(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if r, w := dcount.Reads.Load(), dcount.Writes.Load(); r != 0 || w != 1 {
				t.Errorf("dimutex acquire sent %d reads, %d writes; want 0, 1", r, w)
			}

			shc, scount := clients.NewHTTP()
			c, err := clients.SDK(ctx, srv.URL, shc)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			obj := c.Bucket(bucket).Object("check/lock")
			attrs, err := obj.Attrs(ctx)
			if err != nil {
				t.Fatalf("SDK sees no lock that dimutex holds: %v", err)
			}
			if attrs.Generation != l.Token() {
				t.Errorf("SDK sees generation %d, dimutex holds %d", attrs.Generation, l.Token())
			}
			w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
			w.Write([]byte("x"))
			var ge *googleapi.Error
			if err := w.Close(); !errors.As(err, &ge) || ge.Code != 412 {
				t.Errorf("SDK create over a held lock: %v, want a 412", err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := obj.Attrs(ctx); !errors.Is(err, storage.ErrObjectNotExist) {
				t.Errorf("after release the SDK reads %v, want ErrObjectNotExist", err)
			}
			if r, w := scount.Reads.Load(), scount.Writes.Load(); r != 2 || w != 1 {
				t.Errorf("SDK sent %d reads, %d writes; want 2, 1", r, w)
			}
		})
	}
}
