package dimutextest_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// once returns a FaultFunc that gives f to the first request with this Op,
// and no fault to every other.
func once(op string, f dimutextest.Fault) dimutextest.FaultFunc {
	var mu sync.Mutex
	done := false
	return func(r *dimutextest.Request) dimutextest.Fault {
		mu.Lock()
		defer mu.Unlock()
		if done || r.Op != op {
			return dimutextest.Fault{}
		}
		done = true
		return f
	}
}

// inModes runs f in memory inside a synctest bubble, and through httptest
// with real time.
func inModes(t *testing.T, f func(t *testing.T, a *api, memory bool)) {
	t.Run("memory", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) { f(t, inMemory(t), true) })
	})
	t.Run("httptest", func(t *testing.T) {
		srv := dimutextest.NewServer(dimutextest.WithBucket(bkt))
		ep, hc := modes[1].start(t, srv)
		f(t, &api{t: t, srv: srv, base: ep, hc: hc}, false)
	})
}

func createBody() (string, http.Header, []byte) {
	return "/upload/storage/v1/b/" + bkt + "/o?uploadType=multipart&name=obj&ifGenerationMatch=0",
		http.Header{"Content-Type": {"multipart/related; boundary=x"}},
		multipart("x", `{"contentType":"text/plain"}`, "text/plain", "payload")
}

// FailBefore answers the status with GCS's reason and applies nothing.
func TestFaultFailBefore(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		for _, c := range []struct {
			status         int
			reason, domain string
		}{
			{400, "invalid", "global"}, {401, "required", "global"}, {403, "forbidden", "global"},
			{408, "requestTimeout", "global"}, {429, "rateLimitExceeded", "usageLimits"},
			{500, "backendError", "global"}, {502, "badGateway", "global"}, {503, "backendError", "global"},
			{504, "gatewayTimeout", "global"}, {0, "backendError", "global"},
		} {
			a.srv.SetFaults(once("insert", dimutextest.Fault{Kind: dimutextest.FailBefore, Status: c.status}))
			path, h, body := createBody()
			want := c.status
			if want == 0 {
				want = 503
			}
			a.do("POST", path, h, body).wantError(t, want, c.reason, c.domain)
			if _, ok := a.srv.Object(bkt, "obj"); ok {
				t.Fatalf("FailBefore %d applied the write", c.status)
			}
			rs := a.srv.Requests()
			if last := rs[len(rs)-1]; last.Status != want || last.Applied || last.Fault.Kind != dimutextest.FailBefore {
				t.Errorf("logged %+v", last)
			}
		}
		// Bucket calls and GETs get faults too.
		a.srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault {
			return dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 503}
		})
		a.do("GET", "/storage/v1/b/"+bkt, nil, nil).wantError(t, 503, "backendError", "global")
		a.do("POST", "/storage/v1/b?project=p", nil, []byte(`{"name":"nope-bucket"}`)).wantError(t, 503, "backendError", "global")
		a.get("obj", "").wantError(t, 503, "backendError", "global")
		a.srv.SetFaults(nil)
		a.do("GET", "/storage/v1/b/nope-bucket", nil, nil).wantError(t, 404, "notFound", "global")
	})
}

// A FailBefore status outside 400-599 is a programming error.
func TestFaultFailBeforeBadStatus(t *testing.T) {
	a := inMemory(t)
	a.srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault {
		return dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 200}
	})
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(string), "400 to 599") {
			t.Errorf("recovered %v", r)
		}
	}()
	a.try(context.Background(), "GET", "/storage/v1/b/"+bkt, nil, nil)
}

// ResetBefore: the client sees a connection reset, and nothing is applied.
// ResetAfter: the same reset, but the write was applied.
func TestFaultResets(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		for _, kind := range []dimutextest.FaultKind{dimutextest.ResetBefore, dimutextest.ResetAfter} {
			a.srv.SetFaults(once("insert", dimutextest.Fault{Kind: kind}))
			path, h, body := createBody()
			_, err := a.try(context.Background(), "POST", path, h, body)
			if !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("%v: error %v, want a connection reset", kind, err)
			}
			if memory {
				var op *net.OpError
				if !errors.As(err, &op) || op.Op != "read" || op.Net != "tcp" {
					t.Errorf("%v: error %#v, want a *net.OpError", kind, err)
				}
			}
			_, applied := a.srv.Object(bkt, "obj")
			if applied != (kind == dimutextest.ResetAfter) {
				t.Errorf("%v: applied = %v", kind, applied)
			}
			rs := a.srv.Requests()
			last := rs[len(rs)-1]
			if last.Applied != applied || last.Fault.Kind != kind {
				t.Errorf("%v: logged %+v", kind, last)
			}
			if kind == dimutextest.ResetBefore && last.Status != 0 || kind == dimutextest.ResetAfter && last.Status != 200 {
				t.Errorf("%v: logged status %d", kind, last.Status)
			}
		}
		// A reset GET (fresh connections, so net/http does not retry it).
		a.srv.SetFaults(once("get", dimutextest.Fault{Kind: dimutextest.ResetBefore}))
		if _, err := a.try(context.Background(), "GET", objectPath(bkt, "obj"), nil, nil); !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("GET: %v", err)
		}
	})
}

// TruncateAfter applies the write and sends half the body under the full
// Content-Length: reading it fails with io.ErrUnexpectedEOF. A 204 has no
// body to cut, so its headers are cut instead.
func TestFaultTruncateAfter(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		a.srv.SetFaults(once("insert", dimutextest.Fault{Kind: dimutextest.TruncateAfter}))
		path, h, body := createBody()
		req, _ := http.NewRequest("POST", a.base+path, strings.NewReader(string(body)))
		req.Header = h
		resp, err := a.hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Fatalf("status %d, read error %v; want 200 and an unexpected EOF", resp.StatusCode, err)
		}
		o, ok := a.srv.Object(bkt, "obj")
		if !ok {
			t.Fatal("TruncateAfter did not apply the write")
		}
		full := resp.ContentLength
		if full <= 0 || len(data) != int(full)/2 || !strings.HasPrefix(`{"kind":"storage#object"`, string(data[:min(len(data), 10)])) {
			t.Errorf("got %d bytes %q of Content-Length %d", len(data), data, full)
		}

		a.srv.SetFaults(once("delete", dimutextest.Fault{Kind: dimutextest.TruncateAfter}))
		_, err = a.try(context.Background(), "DELETE", objectPath(bkt, "obj")+"?ifGenerationMatch="+itoa(o.Generation), nil, nil)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("truncated 204: %v, want an unexpected EOF", err)
		}
		if _, ok := a.srv.Object(bkt, "obj"); ok {
			t.Error("TruncateAfter did not apply the delete")
		}
	})
}

// Hang: the client waits until its context ends; nothing is applied, and the
// request is logged with no status.
func TestFaultHang(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		a.srv.SetFaults(once("insert", dimutextest.Fault{Kind: dimutextest.Hang}))
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		path, h, body := createBody()
		_, err := a.try(ctx, "POST", path, h, body)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the deadline", err)
		}
		if el := time.Since(start); memory && el != 200*time.Millisecond || el < 200*time.Millisecond {
			t.Errorf("returned after %v", el)
		}
		if _, ok := a.srv.Object(bkt, "obj"); ok {
			t.Error("a hung request was applied")
		}
		rs := a.srv.Requests()
		if last := rs[len(rs)-1]; last.Status != 0 || last.Applied || last.Fault.Kind != dimutextest.Hang {
			t.Errorf("logged %+v", last)
		}
		// The server is fine afterwards.
		generation(t, a.upload("obj", "d", "ifGenerationMatch=0"))
	})
}

// Latency delays handling. Shorter than the client's timeout, the client
// gets the answer late; longer, the client gets its context's error and
// the write still lands when the latency has passed.
func TestFaultLatency(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		a.srv.SetFaults(once("insert", dimutextest.Fault{Latency: 300 * time.Millisecond}))
		start := time.Now()
		generation(t, a.upload("fast", "d", "ifGenerationMatch=0"))
		if el := time.Since(start); memory && el != 300*time.Millisecond || el < 300*time.Millisecond {
			t.Errorf("answered after %v, want 300ms", el)
		}

		a.srv.SetFaults(once("insert", dimutextest.Fault{Latency: 500 * time.Millisecond}))
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start = time.Now()
		path, h, body := createBody()
		_, err := a.try(ctx, "POST", path, h, body)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("error %v, want the deadline", err)
		}
		if el := time.Since(start); memory && el != 100*time.Millisecond {
			t.Errorf("gave up after %v", el)
		}
		if _, ok := a.srv.Object(bkt, "obj"); ok {
			t.Fatal("the write landed before its latency")
		}
		if n := len(a.srv.Requests()); n != 1 {
			t.Errorf("%d requests logged while one waits out its latency, want 1", n)
		}
		if memory {
			time.Sleep(400 * time.Millisecond)
			synctest.Wait()
		} else {
			for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
				if _, ok := a.srv.Object(bkt, "obj"); ok {
					break
				}
			}
		}
		o, ok := a.srv.Object(bkt, "obj")
		if !ok {
			t.Fatal("the delayed write never landed")
		}
		if memory && !o.Updated.Equal(start.Add(500*time.Millisecond)) {
			t.Errorf("landed at %v, want %v", o.Updated, start.Add(500*time.Millisecond))
		}
		rs := a.srv.Requests()
		if len(rs) != 2 || !rs[1].Applied || rs[1].Status != 200 || rs[1].Seq != 2 {
			t.Errorf("log %+v", rs)
		}
	})
}

// Fault.Header edits the answer's headers: Date can be removed or garbled.
func TestFaultHeader(t *testing.T) {
	inModes(t, func(t *testing.T, a *api, memory bool) {
		a.srv.SetFaults(once("get", dimutextest.Fault{Header: func(h http.Header) { h.Del("Date") }}))
		generation(t, a.upload("obj", "d", "ifGenerationMatch=0"))
		r := a.get("obj", "")
		if _, ok := r.header["Date"]; ok || r.status != 200 {
			t.Errorf("Date not removed: %d %v", r.status, r.header)
		}
		a.srv.SetFaults(once("get", dimutextest.Fault{Header: func(h http.Header) { h.Set("Date", "garbage") }}))
		if r := a.get("obj", ""); r.header.Get("Date") != "garbage" {
			t.Errorf("Date %q, want garbage", r.header.Get("Date"))
		}
		a.srv.SetFaults(once("get", dimutextest.Fault{Kind: dimutextest.FailBefore, Status: 503,
			Header: func(h http.Header) { h.Set("Retry-After", "1") }}))
		if r := a.get("obj", ""); r.status != 503 || r.header.Get("Retry-After") != "1" {
			t.Errorf("503: %d %v", r.status, r.header)
		}
	})
}

// A request whose context is already done never reaches the server.
func TestDoneContext(t *testing.T) {
	a := inMemory(t)
	consulted := false
	a.srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault { consulted = true; return dimutextest.Fault{} })
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	path, h, body := createBody()
	if _, err := a.try(ctx, "POST", path, h, body); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v", err)
	}
	if _, ok := a.srv.Object(bkt, "obj"); ok || consulted || len(a.srv.Requests()) != 0 {
		t.Errorf("a request with a done context arrived")
	}
}

// The FaultFunc sees the request before anything is done with it.
func TestFaultFuncSeesRequest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		a.srv.SetClock(time.Minute, 1)
		var seen []dimutextest.Request
		a.srv.SetFaults(func(r *dimutextest.Request) dimutextest.Fault {
			if _, ok := a.srv.Object(bkt, "obj"); ok { // may call the server
				t.Error("the FaultFunc ran after the write")
			}
			seen = append(seen, *r)
			return dimutextest.Fault{}
		})
		time.Sleep(time.Second)
		h := http.Header{"Content-Type": {"multipart/related; boundary=x"}, "X-Test-Client": {"alpha"}}
		a.do("POST", "/upload/storage/v1/b/"+bkt+"/o?uploadType=multipart&name=obj&ifGenerationMatch=0", h,
			multipart("x", `{}`, "text/plain", "d"))
		if len(seen) != 1 {
			t.Fatalf("consulted %d times", len(seen))
		}
		r := seen[0]
		if r.Seq != 1 || !r.At.Equal(time.Now()) || !r.ServerTime.Equal(time.Now().Add(time.Minute)) || r.Method != "POST" ||
			r.Op != "insert" || r.Bucket != bkt || r.Object != "obj" || r.Query.Get("ifGenerationMatch") != "0" ||
			r.Header.Get("X-Test-Client") != "alpha" || r.Status != 0 || r.Applied {
			t.Errorf("the FaultFunc saw %+v", r)
		}
	})
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
