// Command footprint-dimutex acquires and releases one lock with dimutex,
// for the footprint comparison. With STORAGE_EMULATOR_HOST set it talks to
// that emulator; otherwise to GCS with Application Default Credentials.
//
//	footprint-dimutex BUCKET OBJECT
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/dimutex/dimutex"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: footprint-dimutex BUCKET OBJECT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m, err := dimutex.NewGCS(os.Args[1], os.Args[2])
	if err != nil {
		fail(err)
	}
	l, err := m.Acquire(ctx)
	if err != nil {
		fail(err)
	}
	if err := l.Release(ctx); err != nil {
		fail(err)
	}
	fmt.Println("acquired and released, token", l.Token())
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
