package dimutextest_test

import (
	"bytes"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/dimutex/dimutex/dimutextest"
)

// The request log records each request as the server saw and handled it.
func TestRequestLog(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		a.srv.SetClock(time.Hour, 1)
		var observed []dimutextest.Request
		a.srv.OnRequest(func(r dimutextest.Request) {
			observed = append(observed, r)
			if len(a.srv.Requests()) != len(observed) { // may call the server
				t.Error("OnRequest ran before the request entered the log")
			}
		})
		tag := http.Header{"X-Client": {"c1"}, "Content-Type": {"multipart/related; boundary=x"}}
		body := multipart("x", `{"name":"from-body"}`, "text/plain", "d")
		start := time.Now()
		r1 := a.do("POST", "/upload/storage/v1/b/"+bkt+"/o?uploadType=multipart&ifGenerationMatch=0", tag, body)
		g := generation(t, r1)
		time.Sleep(time.Second)
		a.do("POST", "/upload/storage/v1/b/"+bkt+"/o?uploadType=multipart&ifGenerationMatch=0", tag, body)
		a.get("from-body", "")
		a.srv.SetFaults(once("delete", dimutextest.Fault{Kind: dimutextest.ResetAfter}))
		a.try(t.Context(), "DELETE", objectPath(bkt, "from-body")+"?ifGenerationMatch="+g, nil, nil)
		a.do("GET", "/storage/v1/b/"+bkt+"/o?prefix=x", nil, nil)
		a.do("POST", "/storage/v1/b?project=p", nil, []byte(`{"name":"logged-bucket"}`))
		a.do("GET", "/storage/v1/b/logged-bucket", nil, nil)
		a.do("GET", "/elsewhere", nil, nil)

		rs := a.srv.Requests()
		want := []struct {
			op, bucket, object string
			status             int
			applied            bool
			gen                bool
		}{
			{"insert", bkt, "from-body", 200, true, true},
			{"insert", bkt, "from-body", 412, false, false},
			{"get", bkt, "from-body", 200, false, true},
			{"delete", bkt, "from-body", 204, true, true},
			{"list", bkt, "", 200, false, false},
			{"bucket.insert", "logged-bucket", "", 200, true, false},
			{"bucket.get", "logged-bucket", "", 200, false, false},
			{"", "", "", 404, false, false},
		}
		if len(rs) != len(want) {
			t.Fatalf("%d requests logged, want %d: %+v", len(rs), len(want), rs)
		}
		for i, w := range want {
			r := rs[i]
			if r.Seq != i+1 || r.Op != w.op || r.Bucket != w.bucket || r.Object != w.object || r.Status != w.status ||
				r.Applied != w.applied || (r.Generation == atoi(g)) != w.gen {
				t.Errorf("request %d: %+v, want %+v", i+1, r, w)
			}
		}
		first := rs[0]
		if !first.At.Equal(start) || !first.ServerTime.Equal(start.Add(time.Hour)) || first.Method != "POST" ||
			first.Query.Get("uploadType") != "multipart" || first.Header.Get("X-Client") != "c1" {
			t.Errorf("first request: %+v", first)
		}
		if !rs[1].At.Equal(start.Add(time.Second)) {
			t.Errorf("second request at %v", rs[1].At)
		}
		if rs[3].Fault.Kind != dimutextest.ResetAfter || rs[0].Fault.Kind != dimutextest.NoFault {
			t.Errorf("faults logged: %v, %v", rs[3].Fault.Kind, rs[0].Fault.Kind)
		}
		if len(observed) != len(rs) || observed[3].Seq != 4 || observed[3].Status != 204 {
			t.Errorf("OnRequest saw %d requests: %+v", len(observed), observed)
		}

		// The log is a copy, and holds a copy of each request's headers.
		rs[0].Op = "changed"
		tag.Set("X-Client", "changed")
		if r := a.srv.Requests()[0]; r.Op != "insert" || r.Header.Get("X-Client") != "c1" {
			t.Errorf("the log changed: %+v", r)
		}
		a.srv.ClearRequests()
		if a.srv.Requests() != nil {
			t.Error("ClearRequests left requests")
		}
		a.srv.OnRequest(nil)
		a.get("x", "")
		if rs := a.srv.Requests(); len(rs) != 1 || rs[0].Seq != 9 {
			t.Errorf("after ClearRequests: %+v", rs)
		}
		if len(observed) != len(want) {
			t.Error("OnRequest(nil) did not remove the observer")
		}
	})
}

// The log is in order of arrival even when a delayed request is handled
// after later ones.
func TestRequestLogOrder(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a := inMemory(t)
		a.srv.SetFaults(once("get", dimutextest.Fault{Latency: time.Second}))
		done := make(chan struct{})
		go func() {
			a.get("x", "")
			close(done)
		}()
		synctest.Wait()
		a.do("GET", "/storage/v1/b/"+bkt, nil, nil)
		<-done
		rs := a.srv.Requests()
		if len(rs) != 2 || rs[0].Op != "get" || rs[0].Seq != 1 || rs[1].Seq != 2 || !rs[0].ServerTime.After(rs[1].ServerTime) {
			t.Errorf("log %+v", rs)
		}
	})
}

// WithoutRequestLog keeps no log; OnRequest still sees every request.
func TestWithoutRequestLog(t *testing.T) {
	a := inMemory(t, dimutextest.WithoutRequestLog())
	n := 0
	a.srv.OnRequest(func(r dimutextest.Request) { n++ })
	for range 10 {
		a.get("x", "")
	}
	if a.srv.Requests() != nil || n != 10 {
		t.Errorf("log %v, observed %d", a.srv.Requests(), n)
	}
}

// The direct-access methods stand in for an operator: they are neither
// requests nor faulted nor logged, and they return copies.
func TestDirectAccess(t *testing.T) {
	srv := dimutextest.NewServer(dimutextest.WithBucket(bkt), dimutextest.WithWriteRateLimit())
	srv.SetFaults(func(*dimutextest.Request) dimutextest.Fault { return dimutextest.Fault{Kind: dimutextest.Hang} })
	for _, bad := range []string{"ab", "Upper", "-dash", "dash-", "under_score_", "a..b", "goog-x", bkt, "has space"} {
		if err := srv.CreateBucket(bad); err == nil {
			t.Errorf("CreateBucket(%q) succeeded", bad)
		}
	}
	for _, ok := range []string{"abc", "a-b_c.d", "0123456789012345678901234567890123456789012345678901234567890ab"} {
		if err := srv.CreateBucket(ok); err != nil {
			t.Errorf("CreateBucket(%q): %v", ok, err)
		}
	}
	md := map[string]string{"k": "v"}
	data := []byte("data")
	o1, err := srv.PutObject(bkt, "a/1", data, md)
	if err != nil {
		t.Fatal(err)
	}
	md["k"], data[0] = "changed", 'X'
	o2, _ := srv.PutObject(bkt, "a/1", []byte("new"), nil)
	if o2.Generation <= o1.Generation || o1.Metageneration != 1 || o1.ContentType != "application/octet-stream" || o1.Bucket != bkt || o1.Name != "a/1" {
		t.Errorf("PutObject: %+v then %+v", o1, o2)
	}
	if _, err := srv.PutObject("no-such-bucket", "x", nil, nil); err == nil {
		t.Error("PutObject into a missing bucket succeeded")
	}
	if _, err := srv.PutObject(bkt, "bad\nname", nil, nil); err == nil {
		t.Error("PutObject with a bad name succeeded")
	}
	srv.PutObject(bkt, "a/0", []byte("zero"), md)
	srv.PutObject(bkt, "b", nil, nil)
	o, ok := srv.Object(bkt, "a/0")
	if !ok || string(o.Data) != "zero" || o.Metadata["k"] != "changed" {
		t.Errorf("Object: %+v", o)
	}
	o.Data[0], o.Metadata["k"] = 'X', "mutated"
	if again, _ := srv.Object(bkt, "a/0"); !bytes.Equal(again.Data, []byte("zero")) || again.Metadata["k"] != "changed" {
		t.Errorf("changing a snapshot changed the server: %+v", again)
	}
	if _, ok := srv.Object(bkt, "missing"); ok {
		t.Error("Object found a missing object")
	}
	if _, ok := srv.Object("no-such-bucket", "a/0"); ok {
		t.Error("Object found an object in a missing bucket")
	}
	var names []string
	for _, o := range srv.Objects(bkt, "a/") {
		names = append(names, o.Name)
	}
	if len(names) != 2 || names[0] != "a/0" || names[1] != "a/1" {
		t.Errorf("Objects(a/) = %v", names)
	}
	if len(srv.Objects(bkt, "")) != 3 || srv.Objects("no-such-bucket", "") != nil {
		t.Error("Objects")
	}
	if !srv.DeleteObject(bkt, "b") || srv.DeleteObject(bkt, "b") || srv.DeleteObject("no-such-bucket", "b") {
		t.Error("DeleteObject")
	}
	// The rate limit does not apply to direct writes.
	for i := range 5 {
		if _, err := srv.PutObject(bkt, "a/1", []byte(strconv.Itoa(i)), nil); err != nil {
			t.Fatal(err)
		}
	}
	if srv.Requests() != nil {
		t.Errorf("direct access was logged: %+v", srv.Requests())
	}
}

// WithBucket panics on a bad or repeated name.
func TestWithBucketPanics(t *testing.T) {
	for _, opts := range [][]dimutextest.Option{
		{dimutextest.WithBucket("x")},
		{dimutextest.WithBucket("abc"), dimutextest.WithBucket("abc")},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("no panic")
				}
			}()
			dimutextest.NewServer(opts...)
		}()
	}
}

// FaultKind names itself.
func TestFaultKindString(t *testing.T) {
	for k, want := range map[dimutextest.FaultKind]string{
		dimutextest.NoFault: "NoFault", dimutextest.FailBefore: "FailBefore", dimutextest.ResetBefore: "ResetBefore",
		dimutextest.ResetAfter: "ResetAfter", dimutextest.TruncateAfter: "TruncateAfter", dimutextest.Hang: "Hang",
		dimutextest.FaultKind(42): "FaultKind(42)",
	} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", int(k), k.String(), want)
		}
	}
}

// The package's non-test code links only the standard library: above all
// not the root package, whose tests use this one.
func TestStandardLibraryOnly(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	if got := strings.Fields(string(out)); len(got) != 1 || got[0] != "github.com/dimutex/dimutex/dimutextest" {
		t.Errorf("non-standard dependencies: %v", got)
	}
}
