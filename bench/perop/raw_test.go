package perop

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"net/textproto"
	"net/url"
	"testing"

	"github.com/dimutex/dimutex/bench/internal/clients"
	"github.com/dimutex/dimutex/bench/internal/emu"
)

// The nethttp rows are a floor, not a contender: the same requests as
// dimutex sends, built once and sent with plain net/http, decoding only the
// generation. No client that speaks this protocol over net/http can cost
// much less.

func rawCycle(b *testing.B, srv *emu.Server) {
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	name := "bench/cycle-nethttp"
	md, data := sdkWrite()
	meta, _ := json.Marshal(map[string]any{"name": name, "contentType": "application/json",
		"cacheControl": "no-store", "metadata": md})
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	pw, _ := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json; charset=UTF-8"}})
	pw.Write(meta)
	pw, _ = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"application/json"}})
	pw.Write(data)
	mw.Close()
	ctype := "multipart/related; boundary=" + mw.Boundary()
	insert := srv.URL + "/upload/storage/v1/b/" + bucket + "/o?uploadType=multipart&ifGenerationMatch=0&name=" + url.QueryEscape(name)
	object := srv.URL + "/storage/v1/b/" + bucket + "/o/" + url.PathEscape(name)
	do := func(req *http.Request) []byte {
		resp, err := hc.Do(req)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode/100 != 2 {
			b.Fatalf("%s %s: %d %v %s", req.Method, req.URL, resp.StatusCode, err, got)
		}
		return got
	}
	measure(b, count, func() {
		req, _ := http.NewRequest(http.MethodPost, insert, bytes.NewReader(body.Bytes()))
		req.Header.Set("Content-Type", ctype)
		var obj struct {
			Generation string `json:"generation"`
		}
		if err := json.Unmarshal(do(req), &obj); err != nil {
			b.Fatal(err)
		}
		req, _ = http.NewRequest(http.MethodDelete, fmt.Sprintf("%s?ifGenerationMatch=%s", object, obj.Generation), nil)
		do(req)
	})
}

func rawRead(b *testing.B, srv *emu.Server) {
	hc, count := clients.NewHTTP()
	defer hc.CloseIdleConnections()
	object := srv.URL + "/storage/v1/b/" + bucket + "/o/" + url.PathEscape(heldName)
	readLoop(b, count, func() error {
		resp, err := hc.Get(object)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, err = io.Copy(io.Discard, resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("GET: %s", resp.Status)
		}
		return err
	})
}
