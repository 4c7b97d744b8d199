package gcsjson_test

import (
	"context"
	"testing"

	"github.com/dimutex/dimutex/e2e/internal/backend"
	"github.com/dimutex/dimutex/gcsjson"
)

// Any object name GCS accepts round-trips through the path and the query,
// on every backend: created, read back under the same name, and deleted.
func FuzzObjectNameRoundTrip(f *testing.F) {
	for _, name := range []string{
		"a/b/c", "with space", "plus+sign", "question?mark", "hash#tag", "percent%20literal",
		"ünïcødé/名前", "semi;colon=eq&amp", "a/../b", "trailing/", "%2F", "..%2f..", "?#[]@!$&'()*+,;=",
		"\x00nul", "tab\t", "\u2028line-separator", "emoji 🔒",
	} {
		f.Add(name)
	}
	// Subtests per backend would pile up under fuzzing; each input is tried
	// on every backend in turn instead.
	type target struct {
		srv *backend.Server
		c   *gcsjson.Client
	}
	var targets []target
	for _, b := range backend.All {
		if b.Unavailable != nil {
			if why := b.Unavailable(); why != "" {
				f.Logf("%s: skipped: %s", b.Name, why)
				continue
			}
		}
		srv := b.Start(f)
		targets = append(targets, target{srv, newClient(f, srv.URL, nil)})
	}
	f.Fuzz(func(t *testing.T, name string) {
		if gcsjson.ValidateObjectName(name) != nil {
			return
		}
		ctx := context.Background()
		for _, tg := range targets {
			bucket, c := tg.srv.Bucket, tg.c
			obj, err := c.Insert(ctx, bucket, name, 0, gcsjson.Write{})
			if err != nil {
				t.Fatalf("%s: Insert(%q): %v", tg.srv.Name, name, err)
			}
			got, err := c.Get(ctx, bucket, name)
			if err != nil || got.Name != name || got.Generation != obj.Generation {
				t.Fatalf("%s: Get(%q) = %+v, %v", tg.srv.Name, name, got, err)
			}
			if err := c.Delete(ctx, bucket, name, obj.Generation); err != nil {
				t.Fatalf("%s: Delete(%q): %v", tg.srv.Name, name, err)
			}
		}
	})
}
