// Package figures_test measures the semaphore and the election's steady
// state on dimutextest, the in-memory GCS, inside testing/synctest bubbles:
// time is virtual, so an hour of polling runs in seconds and every count is
// exact. Each test checks its targets and logs a markdown table (go test
// -v); BENCHMARKS.md's "Leader election" and "Semaphore" sections quote
// them.
//
//	cd bench && GOWORK=off go test -v -count=1 ./figures
//
// Every request takes a virtual round trip of 20 to 60 ms (seeded), so that
// contenders do not move in lockstep.
package figures_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dimutex/dimutex"
	"github.com/dimutex/dimutex/dimutextest"
)

const bucket = "figures"

// clientHeader tags each client's requests, so that the server's request
// hook can count them per client.
const clientHeader = "X-Figures-Client"

// world is one measurement's GCS and its request counts.
type world struct {
	t   *testing.T
	srv *dimutextest.Server

	mu     sync.Mutex
	counts map[string]*counts // by client tag
	rng    *mrand.Rand
	writes map[string][]objectWrite // by object name: every upload and delete
}

// objectWrite is one upload or delete of an object, as the server saw it.
type objectWrite struct {
	at       time.Time
	accepted bool // 2xx; else refused (412, 429, ...)
}

// counts are one client's requests, by kind and answer.
type counts struct {
	gets, lists       int
	inserts, inserted int // all uploads; those that succeeded
	insert412         int // uploads refused by their precondition
	insert429         int // uploads refused by the rate limit
	deletes, deleted  int
	delete429         int
	bytes             int // answer bodies received
}

func (c *counts) writes() int { return c.inserts + c.deletes }

func (c *counts) add(o *counts) {
	c.gets += o.gets
	c.lists += o.lists
	c.inserts += o.inserts
	c.inserted += o.inserted
	c.insert412 += o.insert412
	c.insert429 += o.insert429
	c.deletes += o.deletes
	c.deleted += o.deleted
	c.delete429 += o.delete429
	c.bytes += o.bytes
}

// newWorld returns an in-memory GCS with the bucket, whose every request
// takes a seeded virtual round trip of 20 to 60 ms. Call it inside the
// synctest bubble.
func newWorld(t *testing.T, seed uint64, opts ...dimutextest.Option) *world {
	w := &world{
		t:      t,
		srv:    dimutextest.NewServer(append([]dimutextest.Option{dimutextest.WithBucket(bucket), dimutextest.WithoutRequestLog()}, opts...)...),
		counts: map[string]*counts{},
		writes: map[string][]objectWrite{},
		rng:    mrand.New(mrand.NewPCG(seed, 0xf1905)),
	}
	w.srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault {
		w.mu.Lock()
		defer w.mu.Unlock()
		return dimutextest.Fault{Latency: 20*time.Millisecond + time.Duration(w.rng.Int64N(int64(40*time.Millisecond)))}
	})
	w.srv.OnRequest(func(r dimutextest.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		c := w.client(r.Header.Get(clientHeader))
		if r.Op == "insert" || r.Op == "delete" {
			// When it was handled, as the rate limit judges, not r.At,
			// its arrival, which precedes handling by the round trip.
			w.writes[r.Object] = append(w.writes[r.Object], objectWrite{time.Now(), r.Status >= 200 && r.Status < 300})
		}
		switch r.Op {
		case "get":
			c.gets++
		case "list":
			c.lists++
		case "insert":
			c.inserts++
			switch r.Status {
			case http.StatusOK:
				c.inserted++
			case http.StatusPreconditionFailed:
				c.insert412++
			case http.StatusTooManyRequests:
				c.insert429++
			}
		case "delete":
			c.deletes++
			switch r.Status {
			case http.StatusNoContent, http.StatusOK:
				c.deleted++
			case http.StatusTooManyRequests:
				c.delete429++
			}
		}
	})
	return w
}

func (w *world) client(tag string) *counts {
	c := w.counts[tag]
	if c == nil {
		c = &counts{}
		w.counts[tag] = c
	}
	return c
}

// snapshot returns a copy of the counts of the clients whose tag starts
// with prefix, summed.
func (w *world) snapshot(prefix string) counts {
	w.mu.Lock()
	defer w.mu.Unlock()
	var sum counts
	for tag, c := range w.counts {
		if strings.HasPrefix(tag, prefix) {
			sum.add(c)
		}
	}
	return sum
}

// options point a lock at the server, as the client tag.
func (w *world) options(tag string, opts ...dimutex.Option) []dimutex.Option {
	return append([]dimutex.Option{
		dimutex.WithEndpoint(w.srv.URL()),
		dimutex.WithHTTPClient(&http.Client{Transport: &tagTransport{tag: tag, next: w.srv.Transport(), w: w}}),
		dimutex.WithOwner(tag),
	}, opts...)
}

// tagTransport tags requests with the client's tag and counts the bytes of
// the answers.
type tagTransport struct {
	tag  string
	next http.RoundTripper
	w    *world
}

func (tt *tagTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(clientHeader, tt.tag)
	resp, err := tt.next.RoundTrip(req)
	if err == nil && resp.ContentLength > 0 {
		tt.w.mu.Lock()
		tt.w.client(tt.tag).bytes += int(resp.ContentLength)
		tt.w.mu.Unlock()
	}
	return resp, err
}

// putSlot writes slot i of the semaphore name of size slots as another
// client's acquiring write would: a live lease of an hour.
func (w *world) putSlot(name string, i, size int) {
	var id [16]byte
	rand.Read(id[:])
	owner := fmt.Sprintf("other-%d", i)
	_, err := w.srv.PutObject(bucket, fmt.Sprintf("%s/slot-%03d", name, i), []byte("dimutex lock held by "+owner+"\n"), map[string]string{
		"dimutex-lease": hex.EncodeToString(id[:]),
		"dimutex-ttl":   "3600000",
		"dimutex-owner": owner,
		"dimutex-slots": fmt.Sprint(size),
	})
	if err != nil {
		w.t.Fatal(err)
	}
}

// writeRates sums up the writes to the objects whose names start with
// prefix over [from, to): per object, the accepted and attempted writes per
// second, as the mean over the objects and the largest of any object, and
// the most accepted writes of one object within any one second.
type writeRates struct {
	objects                     int
	acceptedMean, acceptedMax   float64
	attemptedMean, attemptedMax float64
	peakAcceptedPerSecond       int
}

func (w *world) writeRates(prefix string, from, to time.Time) writeRates {
	w.mu.Lock()
	defer w.mu.Unlock()
	var r writeRates
	secs := to.Sub(from).Seconds()
	for name, ws := range w.writes {
		if !strings.HasPrefix(name, prefix) {
			continue
		}
		r.objects++
		var acc []time.Time
		attempted := 0
		for _, x := range ws {
			if x.at.Before(from) || !x.at.Before(to) {
				continue
			}
			attempted++
			if x.accepted {
				acc = append(acc, x.at)
			}
		}
		// The most accepted writes within any window of one second.
		for i, j := 0, 0; j < len(acc); j++ {
			for acc[j].Sub(acc[i]) >= time.Second {
				i++
			}
			r.peakAcceptedPerSecond = max(r.peakAcceptedPerSecond, j-i+1)
		}
		a, t := float64(len(acc))/secs, float64(attempted)/secs
		r.acceptedMean += a
		r.attemptedMean += t
		r.acceptedMax = max(r.acceptedMax, a)
		r.attemptedMax = max(r.attemptedMax, t)
	}
	if r.objects > 0 {
		r.acceptedMean /= float64(r.objects)
		r.attemptedMean /= float64(r.objects)
	}
	return r
}

// perHour scales n events in d to a rate per hour.
func perHour(n int, d time.Duration) float64 { return float64(n) * float64(time.Hour) / float64(d) }
