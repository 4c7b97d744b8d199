// Command footprint-floor is the floor for the footprint comparison: the
// same create (ifGenerationMatch=0) and delete (ifGenerationMatch=<gen>)
// written directly on net/http, with golang.org/x/oauth2/google for
// Application Default Credentials, and no retries. With
// STORAGE_EMULATOR_HOST set it talks to that emulator, unauthenticated.
//
//	footprint-floor BUCKET OBJECT
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"os"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/google"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: footprint-floor BUCKET OBJECT")
		os.Exit(2)
	}
	bucket, name := os.Args[1], os.Args[2]
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, hc := "https://storage.googleapis.com", http.DefaultClient
	if host := os.Getenv("STORAGE_EMULATOR_HOST"); host != "" {
		root = "http://" + host
	} else {
		ts, err := google.DefaultTokenSource(ctx, "https://www.googleapis.com/auth/devstorage.read_write")
		if err != nil {
			fail(err)
		}
		hc = oauth2.NewClient(ctx, ts)
	}
	meta, _ := json.Marshal(map[string]any{"name": name, "contentType": "application/json"})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json; charset=UTF-8"}})
	pw.Write(meta)
	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	pw.Write([]byte("{}\n"))
	mw.Close()
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, root+"/upload/storage/v1/b/"+url.PathEscape(bucket)+
		"/o?uploadType=multipart&ifGenerationMatch=0&name="+url.QueryEscape(name), &body)
	req.Header.Set("Content-Type", "multipart/related; boundary="+mw.Boundary())
	var obj struct {
		Generation string `json:"generation"`
	}
	if err := json.Unmarshal(do(hc, req), &obj); err != nil {
		fail(err)
	}
	req, _ = http.NewRequestWithContext(ctx, http.MethodDelete, root+"/storage/v1/b/"+url.PathEscape(bucket)+
		"/o/"+url.PathEscape(name)+"?ifGenerationMatch="+obj.Generation, nil)
	do(hc, req)
	fmt.Println("created and deleted, generation", obj.Generation)
}

func do(hc *http.Client, req *http.Request) []byte {
	resp, err := hc.Do(req)
	if err != nil {
		fail(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		fail(err)
	}
	if resp.StatusCode/100 != 2 {
		fail(fmt.Errorf("%s %s: %s: %s", req.Method, req.URL.Path, resp.Status, b))
	}
	return b
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
