package gcsjson

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// multipartBody encodes an upload as multipart/related: the object's JSON
// metadata, then its content. It is written by hand into one buffer of the
// right size, since it is on the path of every lock write.
func multipartBody(name string, w Write) (body []byte, contentType string, err error) {
	ct := w.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	if strings.ContainsAny(ct, "\r\n") {
		return nil, "", errors.New("gcsjson: content type contains a line break")
	}
	boundary := randomHex()
	for bytes.Contains(w.Data, []byte(boundary)) {
		boundary = randomHex() // 128 random bits: all but impossible
	}
	size := 256 + len(name) + len(ct) + len(w.CacheControl) + len(w.Data)
	for k, v := range w.Metadata {
		size += len(k) + len(v) + 8
	}
	b := make([]byte, 0, size)
	b = append(b, "--"...)
	b = append(b, boundary...)
	b = append(b, "\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"...)
	b = append(b, `{"name":`...)
	b = appendJSONString(b, name)
	b = append(b, `,"contentType":`...)
	b = appendJSONString(b, ct)
	if w.CacheControl != "" {
		b = append(b, `,"cacheControl":`...)
		b = appendJSONString(b, w.CacheControl)
	}
	if len(w.Metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		for i, k := range slices.Sorted(maps.Keys(w.Metadata)) {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, w.Metadata[k])
		}
		b = append(b, '}')
	}
	b = append(b, "}\r\n--"...)
	b = append(b, boundary...)
	b = append(b, "\r\nContent-Type: "...)
	b = append(b, ct...)
	b = append(b, "\r\n\r\n"...)
	b = append(b, w.Data...)
	b = append(b, "\r\n--"...)
	b = append(b, boundary...)
	b = append(b, "--\r\n"...)
	return b, "multipart/related; boundary=" + boundary, nil
}

// appendJSONString appends s as a JSON string. Invalid UTF-8 becomes
// U+FFFD, as encoding/json does.
func appendJSONString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}
