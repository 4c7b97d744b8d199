package dimutextest

import (
	"crypto/md5"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"net/http"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// The JSON answers are written by hand: they are on the path of every
// request, and their shapes are fixed.

// jsonType is the Content-Type of every JSON answer.
const jsonType = "application/json; charset=UTF-8"

// timeLayout is RFC 3339 in UTC with microseconds, as the resources carry
// times.
const timeLayout = "2006-01-02T15:04:05.000000Z07:00"

// appendObjectResource appends o's JSON resource to b.
func appendObjectResource(b []byte, o *object) []byte {
	if o.generation == "" {
		o.generation = strconv.FormatInt(o.gen, 10)
		o.metageneration = strconv.FormatInt(o.metagen, 10)
	}
	if b == nil {
		n := 400 + 2*(len(o.bucket)+len(o.name)) + len(o.contentType) + len(o.cacheControl)
		for k, v := range o.metadata {
			n += len(k) + len(v) + 8
		}
		b = make([]byte, 0, n)
	}
	b = append(b, `{"kind":"storage#object","id":"`...)
	b = appendJSONInner(b, o.bucket)
	b = append(b, '/')
	b = appendJSONInner(b, o.name)
	b = append(b, '/')
	b = append(b, o.generation...)
	b = append(b, `","name":`...)
	b = appendJSONString(b, o.name)
	b = append(b, `,"bucket":`...)
	b = appendJSONString(b, o.bucket)
	b = append(b, `,"generation":"`...)
	b = append(b, o.generation...)
	b = append(b, `","metageneration":"`...)
	b = append(b, o.metageneration...)
	b = append(b, `","contentType":`...)
	b = appendJSONString(b, o.contentType)
	b = append(b, `,"storageClass":"STANDARD","size":"`...)
	b = strconv.AppendInt(b, int64(len(o.data)), 10)
	b = append(b, `","md5Hash":"`...)
	sum := md5.Sum(o.data)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	b = append(b, `","crc32c":"`...)
	var crc [4]byte
	binary.BigEndian.PutUint32(crc[:], crc32.Checksum(o.data, crc32.MakeTable(crc32.Castagnoli)))
	b = base64.StdEncoding.AppendEncode(b, crc[:])
	b = append(b, '"')
	if o.cacheControl != "" {
		b = append(b, `,"cacheControl":`...)
		b = appendJSONString(b, o.cacheControl)
	}
	b = append(b, `,"timeCreated":"`...)
	b = appendTime(b, o.created)
	b = append(b, `","updated":"`...)
	b = appendTime(b, o.updated)
	b = append(b, '"')
	if len(o.metadata) > 0 {
		b = append(b, `,"metadata":{`...)
		var buf [8]string
		keys := buf[:0]
		for k := range o.metadata {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for i, k := range keys {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, k)
			b = append(b, ':')
			b = appendJSONString(b, o.metadata[k])
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendBucketResource appends bk's JSON resource to b.
func appendBucketResource(b []byte, bk *bucket) []byte {
	b = append(b, `{"kind":"storage#bucket","id":`...)
	b = appendJSONString(b, bk.name)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, bk.name)
	b = append(b, `,"projectNumber":"0","metageneration":"1","location":"US","locationType":"multi-region","storageClass":"STANDARD","timeCreated":"`...)
	b = appendTime(b, bk.created)
	b = append(b, `","updated":"`...)
	b = appendTime(b, bk.created)
	return append(b, `"}`...)
}

// gcsError describes an error answer.
type gcsError struct {
	code    int
	domain  string // "global" if empty
	reason  string
	message string
	// locationType and location, if set, say which part of the request
	// was at fault, as GCS's errors do ("header", "If-Match").
	locationType, location string
}

// standardError returns the error GCS gives for code, with the object ref
// bucket/name in the messages that name it (it may be "").
func standardError(code int, ref string) gcsError {
	e := gcsError{code: code}
	switch code {
	case http.StatusBadRequest:
		e.reason, e.message = "invalid", "Invalid argument."
	case http.StatusUnauthorized:
		e.reason, e.message = "required", "Login Required."
		e.locationType, e.location = "header", "Authorization"
	case http.StatusForbidden:
		e.reason, e.message = "forbidden", "The caller does not have permission."
	case http.StatusNotFound:
		e.reason, e.message = "notFound", "Not Found"
		if ref != "" {
			e.message = "No such object: " + ref
		}
	case http.StatusRequestTimeout:
		e.reason, e.message = "requestTimeout", "The request timed out. Please try again."
	case http.StatusConflict:
		e.reason, e.message = "conflict", "The requested resource already exists."
	case http.StatusPreconditionFailed:
		e.reason, e.message = "conditionNotMet", "At least one of the pre-conditions you specified did not hold."
		e.locationType, e.location = "header", "If-Match"
	case http.StatusTooManyRequests:
		e.domain, e.reason = "usageLimits", "rateLimitExceeded"
		e.message = "The rate of change requests to the object exceeds the rate limit. Please reduce the rate of create, update, and delete requests."
		if ref != "" {
			e.message = "The object " + ref + " exceeded the rate limit for object mutation operations (create, update, and delete). Please reduce your request rate. See https://cloud.google.com/storage/docs/gcs429."
		}
	case http.StatusInternalServerError:
		e.reason, e.message = "backendError", "We encountered an internal error. Please try again."
	case http.StatusNotImplemented:
		e.reason, e.message = "notImplemented", "Not Implemented"
	case http.StatusBadGateway:
		e.reason, e.message = "badGateway", "Bad Gateway"
	case http.StatusServiceUnavailable:
		e.reason, e.message = "backendError", "Backend Error"
	case http.StatusGatewayTimeout:
		e.reason, e.message = "gatewayTimeout", "Gateway Timeout"
	default:
		e.reason, e.message = "invalid", http.StatusText(code)
		if code >= 500 {
			e.reason = "backendError"
		}
	}
	return e
}

// body returns e's GCS-shaped JSON body:
// {"error":{"code":412,"message":"...","errors":[{"message":"...","domain":"global","reason":"conditionNotMet"}]}}.
func (e gcsError) body() []byte {
	b := make([]byte, 0, 160+2*len(e.message))
	b = append(b, `{"error":{"code":`...)
	b = strconv.AppendInt(b, int64(e.code), 10)
	b = append(b, `,"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"errors":[{"message":`...)
	b = appendJSONString(b, e.message)
	b = append(b, `,"domain":`...)
	domain := e.domain
	if domain == "" {
		domain = "global"
	}
	b = appendJSONString(b, domain)
	b = append(b, `,"reason":`...)
	b = appendJSONString(b, e.reason)
	if e.locationType != "" {
		b = append(b, `,"locationType":`...)
		b = appendJSONString(b, e.locationType)
		b = append(b, `,"location":`...)
		b = appendJSONString(b, e.location)
	}
	return append(b, `}]}}`...)
}

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONInner(b, s)
	return append(b, '"')
}

// appendJSONInner appends s escaped for the inside of a JSON string. Invalid
// UTF-8 becomes U+FFFD, as encoding/json does; U+2028 and U+2029 are
// escaped, also as encoding/json does.
func appendJSONInner(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			switch r {
			case utf8.RuneError:
				b = append(b, `\ufffd`...)
			case '\u2028':
				b = append(b, `\u2028`...)
			default:
				b = append(b, `\u2029`...)
			}
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

// appendTime appends t as the resources write times.
func appendTime(b []byte, t time.Time) []byte { return t.UTC().AppendFormat(b, timeLayout) }
