package dimutextest

import (
	"bytes"
	"encoding/base64"
	"errors"
	"mime"
	"strings"
)

// part is one part of a multipart/related body.
type part struct {
	contentType string
	data        []byte
}

// relatedBoundary returns the boundary of a multipart/related Content-Type.
// The common form, `multipart/related; boundary=token`, is read directly;
// anything else goes through mime.ParseMediaType.
func relatedBoundary(contentType string) (string, error) {
	const prefix = "multipart/related; boundary="
	if len(contentType) > len(prefix) && strings.EqualFold(contentType[:len(prefix)], prefix) {
		b := contentType[len(prefix):]
		if !strings.ContainsAny(b, "\"; \t\\") && len(b) <= 70 {
			return b, nil
		}
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		return "", errors.New("malformed Content-Type: " + err.Error())
	}
	if mt != "multipart/related" {
		return "", errors.New("a multipart upload needs Content-Type multipart/related, not " + mt)
	}
	b := params["boundary"]
	if b == "" || len(b) > 70 {
		return "", errors.New("the multipart/related Content-Type needs a boundary of 1 to 70 characters")
	}
	return b, nil
}

// splitRelated splits a multipart body (RFC 2046) into its parts, as
// mime/multipart does. The first delimiter line decides how lines end: CRLF,
// or, as some clients send, a bare LF. A preamble before the first
// delimiter and an epilogue after the last are ignored; the close delimiter
// is required. A part with Content-Transfer-Encoding base64 is decoded.
// Parts' data alias body unless decoded.
func splitRelated(body []byte, boundary string) ([]part, error) {
	// Find the first delimiter line, and with it the line ending.
	dash := []byte("--" + boundary)
	pos := 0
	for {
		if bytes.HasPrefix(body[pos:], dash) {
			rest := body[pos+len(dash):]
			end, ok := delimEnd(rest, "\r\n")
			if !ok {
				end, ok = delimEnd(rest, "\n")
			}
			if ok && end > 0 {
				break
			}
		}
		i := bytes.IndexByte(body[pos:], '\n')
		if i < 0 {
			return nil, errors.New("the multipart body has no boundary delimiter")
		}
		pos += i + 1
	}
	nl := "\r\n"
	if _, ok := delimEnd(body[pos+len(dash):], nl); !ok {
		nl = "\n"
	}
	// needle is a delimiter with the line break before it, which belongs to
	// the delimiter.
	needle := []byte(nl + "--" + boundary)
	pos += len(dash)
	var parts []part
	for {
		end, _ := delimEnd(body[pos:], nl)
		if end < 0 {
			if len(parts) == 0 {
				return nil, errors.New("the multipart body has no parts")
			}
			return parts, nil
		}
		pos += end
		var p part
		var b64 bool
		// Headers, up to an empty line.
		for {
			end := bytes.IndexByte(body[pos:], '\n')
			if end < 0 {
				return nil, errors.New("a multipart part's headers are not terminated")
			}
			line := body[pos : pos+end]
			pos += end + 1
			line = bytes.TrimSuffix(line, []byte("\r"))
			if len(line) == 0 {
				break
			}
			k, v, ok := bytes.Cut(line, []byte(":"))
			if !ok {
				return nil, errors.New("a multipart part has a malformed header line")
			}
			key := string(bytes.TrimSpace(k))
			switch {
			case strings.EqualFold(key, "Content-Type"):
				p.contentType = string(bytes.TrimSpace(v))
			case strings.EqualFold(key, "Content-Transfer-Encoding"):
				switch enc := strings.ToLower(string(bytes.TrimSpace(v))); enc {
				case "base64":
					b64 = true
				case "", "binary", "8bit", "7bit":
				default:
					return nil, errors.New("unsupported Content-Transfer-Encoding " + enc)
				}
			}
		}
		// Content, up to the next delimiter.
		var data []byte
		if bytes.HasPrefix(body[pos:], dash) && isDelim(body[pos+len(dash):], nl) {
			// An empty part whose delimiter follows the headers' blank line.
			pos += len(dash)
		} else {
			i := indexDelim(body, pos, needle, nl)
			if i < 0 {
				return nil, errors.New("the multipart body ends without a close delimiter")
			}
			data = body[pos:i]
			pos = i + len(needle)
		}
		if b64 {
			dec := make([]byte, base64.StdEncoding.DecodedLen(len(data)))
			n, err := base64.StdEncoding.Decode(dec, data)
			if err != nil {
				return nil, errors.New("a multipart part is not valid base64")
			}
			data = dec[:n]
		}
		p.data = data
		if len(parts) == 2 {
			return nil, errors.New("the multipart body has more than two parts")
		}
		parts = append(parts, p)
	}
}

// indexDelim returns the index of the next needle (nl + "--boundary") at
// or after from that starts a delimiter line, or -1.
func indexDelim(body []byte, from int, needle []byte, nl string) int {
	for {
		j := bytes.Index(body[from:], needle)
		if j < 0 {
			return -1
		}
		i := from + j
		if isDelim(body[i+len(needle):], nl) {
			return i
		}
		from = i + 1
	}
}

// delimEnd looks at rest, what follows "--boundary" at the start of a line.
// It reports whether that makes a delimiter line: "--" (the close
// delimiter; end is then -1), or optional spaces and tabs and then nl (end
// is then the length of that, up to the next line).
func delimEnd(rest []byte, nl string) (end int, ok bool) {
	if bytes.HasPrefix(rest, []byte("--")) {
		return -1, true
	}
	n := 0
	for n < len(rest) && (rest[n] == ' ' || rest[n] == '\t') {
		n++
	}
	if bytes.HasPrefix(rest[n:], []byte(nl)) {
		return n + len(nl), true
	}
	return 0, false
}

func isDelim(rest []byte, nl string) bool {
	_, ok := delimEnd(rest, nl)
	return ok
}
