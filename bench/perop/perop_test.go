// Package perop compares the cost of one lock cycle and one read of the lock
// between dimutex and the official SDK, against the same fake-gcs-server
// listener on 127.0.0.1, with equal HTTP clients (see package clients).
//
// Each benchmark runs against two servers: server=inproc, an emulator in
// this process, and server=child, the same emulator in a child process
// (this test binary run again), so that B/op and allocs/op of the second
// count the client's work alone.
//
//	go test -run '^$' -bench . -benchmem ./perop
package perop

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"cloud.google.com/go/storage"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/bench/internal/clients"
	"github.com/dimutex/dimutex/bench/internal/emu"
	"github.com/dimutex/dimutex/gcsjson"
)

const bucket = emu.Bucket

func TestMain(m *testing.M) {
	emu.ServeIfChild()
	code := m.Run()
	stopServers()
	os.Exit(code)
}

// Servers are started on first use and shared by every benchmark in the
// process, so both clients of a comparison talk to the same listener.
var (
	serversMu sync.Mutex
	servers   = map[string]*emu.Server{}
	held      = map[string]*dimutex.Lease{}
)

var modes = []string{"inproc", "child"}

func server(tb testing.TB, mode string) *emu.Server {
	tb.Helper()
	serversMu.Lock()
	defer serversMu.Unlock()
	if s := servers[mode]; s != nil {
		return s
	}
	var (
		s   *emu.Server
		err error
	)
	switch mode {
	case "inproc":
		s, err = emu.StartInProcess(nil)
	case "child":
		s, err = emu.StartChild()
	default:
		err = fmt.Errorf("unknown server mode %q", mode)
	}
	if err != nil {
		tb.Fatal(err)
	}
	// The object that the read benchmarks read: a live lock, held for the
	// whole run without refreshes, so that nothing else writes meanwhile.
	hc, _ := clients.NewHTTP()
	m, err := clients.Dimutex(s.URL, bucket, heldName, hc,
		dimutex.WithTTL(time.Hour), dimutex.WithRefreshInterval(0), dimutex.WithOwner(owner))
	if err != nil {
		tb.Fatal(err)
	}
	l, err := m.Acquire(context.Background())
	if err != nil {
		tb.Fatal(err)
	}
	servers[mode], held[mode] = s, l
	return s
}

func stopServers() {
	serversMu.Lock()
	defer serversMu.Unlock()
	for mode, s := range servers {
		held[mode].Release(context.Background())
		s.Stop()
	}
}

const (
	heldName = "bench/held"
	owner    = "bench-host/4242"
)

// sdkWrite is what the SDK side writes: the same metadata, content type,
// cache control and body as a dimutex lease record. It is built once, so the
// SDK side does less work per cycle than dimutex, which makes a lease id and
// encodes its record each time.
func sdkWrite() (map[string]string, []byte) {
	md := map[string]string{
		"dimutex-lease": "0123456789abcdef0123456789abcdef",
		"dimutex-ttl":   "60000",
		"dimutex-owner": owner,
	}
	body, _ := json.Marshal(md)
	return md, append(body, '\n')
}

// cpuTime returns this process's user plus system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// measure runs op b.N times and reports, beside the usual numbers, the
// requests per op that c counted and this process's CPU time per op
// (cpu-ns/op; with server=child that is the client's alone).
func measure(b *testing.B, c *clients.Counter, op func()) {
	op() // opens the connection
	c.Reset()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	for range b.N {
		op()
	}
	cpu := cpuTime() - cpu0
	b.StopTimer()
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	r, w := c.Reads.Load(), c.Writes.Load()
	b.ReportMetric(float64(r+w)/float64(b.N), "req/op")
	b.ReportMetric(float64(w)/float64(b.N), "write/op")
}

// BenchmarkCycle: one uncontended acquire+release with dimutex, against one
// create (DoesNotExist) and delete (GenerationMatch) with the SDK.
func BenchmarkCycle(b *testing.B) {
	for _, mode := range modes {
		b.Run("server="+mode, func(b *testing.B) {
			srv := server(b, mode)
			b.Run("client=dimutex", func(b *testing.B) { dimutexCycle(b, srv) })
			b.Run("client=dimutex-norefresh", func(b *testing.B) {
				dimutexCycle(b, srv, dimutex.WithRefreshInterval(0))
			})
			b.Run("client=sdk", func(b *testing.B) { sdkCycle(b, srv, -1) })
			b.Run("client=sdk-chunk0", func(b *testing.B) { sdkCycle(b, srv, 0) })
			b.Run("client=nethttp", func(b *testing.B) { rawCycle(b, srv) })
		})
	}
}

func dimutexCycle(b *testing.B, srv *emu.Server, opts ...dimutex.Option) {
	ctx := context.Background()
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	m, err := clients.Dimutex(srv.URL, bucket, "bench/cycle-dimutex", hc, append([]dimutex.Option{dimutex.WithOwner(owner)}, opts...)...)
	if err != nil {
		b.Fatal(err)
	}
	cycle := func() {
		l, err := m.Acquire(ctx)
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
	}
	measure(b, count, cycle)
}

// sdkCycle uses the Writer's default ChunkSize (16 MiB) if chunk < 0.
func sdkCycle(b *testing.B, srv *emu.Server, chunk int) {
	ctx := context.Background()
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	c, err := clients.SDK(ctx, srv.URL, hc)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	obj := c.Bucket(bucket).Object(fmt.Sprintf("bench/cycle-sdk%d", chunk))
	md, body := sdkWrite()
	cycle := func() {
		w := obj.If(storage.Conditions{DoesNotExist: true}).NewWriter(ctx)
		if chunk >= 0 {
			w.ChunkSize = chunk
		}
		w.ContentType = "application/json"
		w.CacheControl = "no-store"
		w.Metadata = md
		if _, err := w.Write(body); err != nil {
			b.Fatal(err)
		}
		if err := w.Close(); err != nil {
			b.Fatal(err)
		}
		gen := w.Attrs().Generation
		if err := obj.If(storage.Conditions{GenerationMatch: gen}).Delete(ctx); err != nil {
			b.Fatal(err)
		}
	}
	measure(b, count, cycle)
}

// BenchmarkRead: read the held lock's metadata, with dimutex's gcsjson
// Client.Get, with Mutex.Inspect (Get plus decoding the lease record), and
// with the SDK's ObjectHandle.Attrs.
func BenchmarkRead(b *testing.B) {
	for _, mode := range modes {
		b.Run("server="+mode, func(b *testing.B) {
			srv := server(b, mode)
			b.Run("client=dimutex-get", func(b *testing.B) { readGet(b, srv) })
			b.Run("client=dimutex-inspect", func(b *testing.B) { readInspect(b, srv) })
			b.Run("client=sdk-attrs", func(b *testing.B) { readAttrs(b, srv) })
			b.Run("client=nethttp", func(b *testing.B) { rawRead(b, srv) })
		})
	}
}

func readLoop(b *testing.B, count *clients.Counter, read func() error) {
	measure(b, count, func() {
		if err := read(); err != nil {
			b.Fatal(err)
		}
	})
}

func readGet(b *testing.B, srv *emu.Server) {
	ctx := context.Background()
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	u, _ := url.Parse(srv.URL)
	c, err := gcsjson.New(gcsjson.Config{Endpoint: u, HTTPClient: hc})
	if err != nil {
		b.Fatal(err)
	}
	readLoop(b, count, func() error {
		_, err := c.Get(ctx, bucket, heldName)
		return err
	})
}

func readInspect(b *testing.B, srv *emu.Server) {
	ctx := context.Background()
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	m, err := clients.Dimutex(srv.URL, bucket, heldName, hc)
	if err != nil {
		b.Fatal(err)
	}
	readLoop(b, count, func() error {
		st, err := m.Inspect(ctx)
		if err == nil && !st.Held {
			err = errors.New("Inspect: the lock is not held")
		}
		return err
	})
}

func readAttrs(b *testing.B, srv *emu.Server) {
	ctx := context.Background()
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	c, err := clients.SDK(ctx, srv.URL, hc)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	obj := c.Bucket(bucket).Object(heldName)
	readLoop(b, count, func() error {
		_, err := obj.Attrs(ctx)
		return err
	})
}
