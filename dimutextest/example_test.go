package dimutextest_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net/url"
	"strings"
	"syscall"

	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// A client created in memory: no sockets, no emulator. The root package is
// used the same way, with dimutex.WithEndpoint(srv.URL()) and
// dimutex.WithHTTPClient(srv.Client()).
func ExampleServer() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("locks"))
	endpoint, _ := url.Parse(srv.URL())
	client, err := gcsjson.New(gcsjson.Config{Endpoint: endpoint, HTTPClient: srv.Client()})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	// Create the object only if it does not exist.
	o, err := client.Insert(ctx, "locks", "jobs/nightly", 0, gcsjson.Write{Data: []byte("held")})
	if err != nil {
		log.Fatal(err)
	}
	_, err = client.Insert(ctx, "locks", "jobs/nightly", 0, gcsjson.Write{Data: []byte("held too")})
	fmt.Println("second create refused:", gcsjson.IsPreconditionFailed(err))

	// DELETE checks its precondition, as GCS does.
	err = client.Delete(ctx, "locks", "jobs/nightly", o.Generation+1)
	fmt.Println("stale delete refused:", gcsjson.IsPreconditionFailed(err))

	// What an operator sees.
	stored, _ := srv.Object("locks", "jobs/nightly")
	fmt.Printf("stored: %s, generation %v\n", stored.Data, stored.Generation == o.Generation)

	for _, r := range srv.Requests() {
		fmt.Println(r.Seq, r.Method, r.Op, r.Object, r.Status, r.Applied)
	}
	// Output:
	// second create refused: true
	// stale delete refused: true
	// stored: held, generation true
	// 1 POST insert jobs/nightly 200 true
	// 2 POST insert jobs/nightly 412 false
	// 3 DELETE delete jobs/nightly 412 false
}

// Faults: the first insert's connection resets after the write is applied,
// so the client's retry finds the object already there.
func ExampleServer_SetFaults() {
	srv := dimutextest.NewServer(dimutextest.WithBucket("locks"), dimutextest.WithoutRequestLog())
	first := true
	srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
		if r.Op == "insert" && first {
			first = false
			return dimutextest.Fault{Kind: dimutextest.ResetAfter}
		}
		return dimutextest.Fault{}
	})
	srv.OnRequest(func(r dimutextest.Request) {
		fmt.Println(r.Op, r.Status, r.Applied, r.Fault.Kind)
	})

	// A plain request sees the reset; its retry finds the object.
	const create = "/upload/storage/v1/b/locks/o?uploadType=media&name=a&ifGenerationMatch=0"
	_, err := srv.Client().Post(srv.URL()+create, "text/plain", strings.NewReader("x"))
	fmt.Println("reset:", errors.Is(err, syscall.ECONNRESET))
	resp, err := srv.Client().Post(srv.URL()+create, "text/plain", strings.NewReader("x"))
	if err != nil {
		log.Fatal(err)
	}
	resp.Body.Close()
	fmt.Println(resp.Status)
	// Output:
	// insert 200 true ResetAfter
	// reset: true
	// insert 412 false NoFault
	// 412 Precondition Failed
}
