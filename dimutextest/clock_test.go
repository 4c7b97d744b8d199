package dimutextest_test

import (
	"math"
	"net/http"
	"strconv"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// inMemory returns an api on a new in-memory Server.
func inMemory(t *testing.T, opts ...dimutextest.Option) *api {
	srv := dimutextest.NewServer(append([]dimutextest.Option{dimutextest.WithBucket(bkt)}, opts...)...)
	return &api{t: t, srv: srv, base: srv.URL(), hc: srv.Client()}
}

// The server's clock is time.Now by default; in a synctest bubble that is
// the bubble's exact virtual time.
func TestClockDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		time.Sleep(1500 * time.Millisecond)
		now := time.Now()
		if got := a.srv.Now(); !got.Equal(now) || got.Location() != time.UTC {
			t.Errorf("Now %v, want %v in UTC", got, now)
		}
		r := a.upload("o", "d", "ifGenerationMatch=0")
		m := r.json(t)
		if got := parseTime(t, m["updated"]); !got.Equal(now) {
			t.Errorf("updated %v, want %v", got, now)
		}
		if got := parseTime(t, m["timeCreated"]); !got.Equal(now) {
			t.Errorf("timeCreated %v, want %v", got, now)
		}
		if g := atoi(m["generation"].(string)); g != now.UnixMicro() {
			t.Errorf("generation %d, want %d", g, now.UnixMicro())
		}
		// Date is whole seconds: truncated, not rounded.
		if d := r.header.Get("Date"); d != now.Truncate(time.Second).UTC().Format(http.TimeFormat) {
			t.Errorf("Date %q at %v", d, now)
		}
		if o, _ := a.srv.Object(bkt, "o"); !o.Updated.Equal(now) || !o.TimeCreated.Equal(now) {
			t.Errorf("Object times %v %v, want %v", o.TimeCreated, o.Updated, now)
		}
	})
}

// SetClock offsets the clock and changes its rate; the answers' times and
// Date follow it exactly.
func TestClockOffsetAndRate(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		start := time.Now()
		a.srv.SetClock(90*time.Second+300*time.Millisecond, 1)
		check := func(want time.Time) {
			t.Helper()
			if got := a.srv.Now(); !got.Equal(want) {
				t.Errorf("Now %v, want %v", got, want)
			}
			r := a.upload("o", "d", "")
			if got := parseTime(t, r.json(t)["updated"]); !got.Equal(want) {
				t.Errorf("updated %v, want %v", got, want)
			}
			if d := r.header.Get("Date"); d != want.Truncate(time.Second).Format(http.TimeFormat) {
				t.Errorf("Date %q, want %v truncated", d, want)
			}
			if rs := a.srv.Requests(); !rs[len(rs)-1].ServerTime.Equal(want) {
				t.Errorf("logged ServerTime %v, want %v", rs[len(rs)-1].ServerTime, want)
			}
		}
		check(start.Add(90*time.Second + 300*time.Millisecond))
		time.Sleep(10 * time.Second)
		check(start.Add(100*time.Second + 300*time.Millisecond))

		// Twice as fast, from the current reading: continuous.
		a.srv.SetClock(time.Until(a.srv.Now()), 2)
		time.Sleep(10 * time.Second)
		check(start.Add(120*time.Second + 300*time.Millisecond))

		// Half speed.
		a.srv.SetClock(time.Until(a.srv.Now()), 0.5)
		time.Sleep(10 * time.Second)
		check(start.Add(125*time.Second + 300*time.Millisecond))

		// A jump backwards: an hour behind true time.
		a.srv.SetClock(-time.Hour, 1)
		check(time.Now().Add(-time.Hour))
	})
}

// Generations strictly increase even when the clock goes backwards; they
// are the clock in microseconds when it allows.
func TestGenerationsClockBackwards(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		g1 := atoi(generation(t, a.upload("o", "d", "")))
		a.srv.SetClock(-time.Hour, 1)
		g2 := atoi(generation(t, a.upload("o", "d", "")))
		o, _ := a.srv.PutObject(bkt, "p", nil, nil)
		g3 := atoi(generation(t, a.upload("q", "d", "")))
		if !(g1 < g2 && g2 < o.Generation && o.Generation < g3) {
			t.Errorf("generations %d, %d, %d, %d: want strictly increasing", g1, g2, o.Generation, g3)
		}
		// The object's times still come from the clock, an hour behind.
		if o, _ := a.srv.Object(bkt, "q"); !o.Updated.Equal(time.Now().Add(-time.Hour)) {
			t.Errorf("updated %v, want an hour ago", o.Updated)
		}
		a.srv.SetClock(time.Hour, 1)
		if g := atoi(generation(t, a.upload("o", "d", ""))); g != time.Now().Add(time.Hour).UnixMicro() {
			t.Errorf("generation %d, want the clock in µs once it is ahead again", g)
		}
	})
}

// SetClock panics on a rate that is not a positive finite number.
func TestSetClockBadRate(t *testing.T) {
	srv := dimutextest.NewServer()
	for _, rate := range []float64{0, -1, math.NaN(), math.Inf(1)} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SetClock(0, %v) did not panic", rate)
				}
			}()
			srv.SetClock(0, rate)
		}()
	}
}

// With WithWriteRateLimit, a second mutation of one name within a second of
// true time is 429 rateLimitExceeded (usageLimits) and not applied.
func TestWriteRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t, dimutextest.WithWriteRateLimit())
		g := generation(t, a.upload("o", "one", "ifGenerationMatch=0"))
		time.Sleep(999 * time.Millisecond)
		msg := a.upload("o", "two", "ifGenerationMatch="+g).wantError(t, 429, "rateLimitExceeded", "usageLimits")
		if want := "The object " + bkt + "/o exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429."; msg != want {
			t.Errorf("429 message %q", msg)
		}
		// The limit comes before preconditions; a delete is a mutation too.
		a.upload("o", "two", "ifGenerationMatch=0").wantError(t, 429, "rateLimitExceeded", "usageLimits")
		a.del("o", "?ifGenerationMatch="+g).wantError(t, 429, "rateLimitExceeded", "usageLimits")
		if o, _ := a.srv.Object(bkt, "o"); string(o.Data) != "one" {
			t.Fatalf("a refused write was applied: %q", o.Data)
		}
		// Other names, reads, and the server's direct access are not limited.
		generation(t, a.upload("p", "x", "ifGenerationMatch=0"))
		generation(t, a.get("o", ""))
		if _, err := a.srv.PutObject(bkt, "o", []byte("direct"), nil); err != nil {
			t.Fatal(err)
		}
		o, _ := a.srv.Object(bkt, "o")
		g = strconv.FormatInt(o.Generation, 10)

		// A second after the accepted write, refusals not counting, a write
		// is accepted.
		time.Sleep(time.Millisecond)
		g = generation(t, a.upload("o", "three", "ifGenerationMatch="+g))
		time.Sleep(500 * time.Millisecond)
		a.del("o", "?ifGenerationMatch="+g).wantError(t, 429, "rateLimitExceeded", "usageLimits")
		time.Sleep(500 * time.Millisecond)
		if r := a.del("o", "?ifGenerationMatch="+g); r.status != 204 {
			t.Fatalf("delete a second after the write: %d %s", r.status, r.body)
		}
		// A delete counts: recreating at once is refused.
		a.upload("o", "four", "ifGenerationMatch=0").wantError(t, 429, "rateLimitExceeded", "usageLimits")
		// The limit is on true time, not on the server's clock.
		a.srv.SetClock(time.Hour, 1)
		a.upload("o", "four", "ifGenerationMatch=0").wantError(t, 429, "rateLimitExceeded", "usageLimits")
		time.Sleep(time.Second)
		generation(t, a.upload("o", "four", "ifGenerationMatch=0"))
		// Requests still log the status.
		var limited int
		for _, r := range a.srv.Requests() {
			if r.Status == 429 {
				limited++
				if r.Applied {
					t.Errorf("request %d: 429 and applied", r.Seq)
				}
			}
		}
		if limited != 6 {
			t.Errorf("%d requests limited, want 6", limited)
		}
	})
}

// Without WithWriteRateLimit, back-to-back writes of one name all succeed.
func TestNoWriteRateLimit(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		g := "0"
		for range 100 {
			g = generation(t, a.upload("o", "d", "ifGenerationMatch="+g))
		}
	})
}

// A long run with the rate limit prunes its memory without losing a limit
// that still applies.
func TestWriteRateLimitManyNames(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t, dimutextest.WithWriteRateLimit(), dimutextest.WithoutRequestLog())
		for i := range 3000 {
			if i%1000 == 0 {
				time.Sleep(2 * time.Second)
			}
			generation(t, a.upload("n"+strconv.Itoa(i), "d", "ifGenerationMatch=0"))
		}
		a.upload("n2999", "d", "").wantError(t, 429, "rateLimitExceeded", "usageLimits")
		generation(t, a.upload("n0", "d", ""))
		if a.srv.Requests() != nil {
			t.Error("WithoutRequestLog kept a log")
		}
	})
}
