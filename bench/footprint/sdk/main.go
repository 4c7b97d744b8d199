// Command footprint-sdk does what footprint-dimutex does with the official
// SDK: one create guarded by DoesNotExist, and one delete guarded by
// GenerationMatch. With STORAGE_EMULATOR_HOST set it talks to that
// emulator; otherwise to GCS with Application Default Credentials.
//
//	footprint-sdk BUCKET OBJECT
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"cloud.google.com/go/storage"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: footprint-sdk BUCKET OBJECT")
		os.Exit(2)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := storage.NewClient(ctx)
	if err != nil {
		fail(err)
	}
	defer c.Close()
	obj := c.Bucket(os.Args[1]).Object(os.Args[2])
	w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
	w.ContentType = "application/json"
	w.Metadata = map[string]string{"owner": "footprint-sdk"}
	if _, err := w.Write([]byte("{}\n")); err != nil {
		fail(err)
	}
	if err := w.Close(); err != nil {
		fail(err)
	}
	gen := w.Attrs().Generation
	if err := obj.If(storage.Conditions{GenerationMatch: gen}).Delete(ctx); err != nil {
		fail(err)
	}
	fmt.Println("created and deleted, generation", gen)
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
