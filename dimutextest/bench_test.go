package dimutextest_test

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/dimutex/dimutex/dimutextest"
	"github.com/dimutex/dimutex/gcsjson"
)

// BenchmarkRoundTrip measures one insert, one get and one delete through
// our own client, gcsjson, and the in-memory transport: the cost of one
// lock cycle in a simulation, client included. It runs with and without the
// request log.
func BenchmarkRoundTrip(b *testing.B) {
	for _, c := range []struct {
		name string
		opts []dimutextest.Option
	}{
		{"log", nil},
		{"nolog", []dimutextest.Option{dimutextest.WithoutRequestLog()}},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := dimutextest.NewServer(append(c.opts, dimutextest.WithBucket("bench"))...)
			u, _ := url.Parse(srv.URL())
			cl, err := gcsjson.New(gcsjson.Config{Endpoint: u, HTTPClient: srv.Client()})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			w := gcsjson.Write{Data: []byte(`{"owner":"host/123","lease":"0123456789abcdef"}`), ContentType: "application/json",
				CacheControl: "no-store", Metadata: map[string]string{"dimutex-expires": "2026-01-01T00:00:00Z", "dimutex-owner": "host/123"}}
			b.ReportAllocs()
			for b.Loop() {
				o, err := cl.Insert(ctx, "bench", "locks/job", 0, w)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := cl.Get(ctx, "bench", "locks/job"); err != nil {
					b.Fatal(err)
				}
				if err := cl.Delete(ctx, "bench", "locks/job", o.Generation); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkServerOnly measures mostly the server's side: the same three
// requests, built with net/http alone and sent straight to
// Transport().RoundTrip, without gcsjson's retry loop.
func BenchmarkServerOnly(b *testing.B) {
	srv := dimutextest.NewServer(dimutextest.WithBucket("bench"), dimutextest.WithoutRequestLog())
	rt := srv.Transport()
	body := "--XYZ\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n" +
		`{"name":"locks/job","contentType":"application/json","cacheControl":"no-store","metadata":{"dimutex-expires":"2026-01-01T00:00:00Z","dimutex-owner":"host/123"}}` +
		"\r\n--XYZ\r\nContent-Type: application/json\r\n\r\n" + `{"owner":"host/123","lease":"0123456789abcdef"}` + "\r\n--XYZ--\r\n"
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("POST", "http://x/upload/storage/v1/b/bench/o?ifGenerationMatch=0&name=locks%2Fjob&uploadType=multipart", strings.NewReader(body))
		req.Header.Set("Content-Type", "multipart/related; boundary=XYZ")
		resp, err := rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err, resp.StatusCode)
		}
		data, _ := io.ReadAll(resp.Body)
		o, _ := gcsjson.ParseObject(data)
		g := strconv.FormatInt(o.Generation, 10)
		req, _ = http.NewRequest("GET", "http://x/storage/v1/b/bench/o/locks%2Fjob", nil)
		resp, err = rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 200 {
			b.Fatal(err)
		}
		io.ReadAll(resp.Body)
		req, _ = http.NewRequest("DELETE", "http://x/storage/v1/b/bench/o/locks%2Fjob?ifGenerationMatch="+g, nil)
		resp, err = rt.RoundTrip(req)
		if err != nil || resp.StatusCode != 204 {
			b.Fatal(err)
		}
	}
}
