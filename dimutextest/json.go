package dimutextest

import (
	"encoding/json"
	"strings"
	"unicode/utf8"
)

// uploadMetadata is the part of an object resource that an upload's
// metadata part sets.
type uploadMetadata struct {
	Name         string            `json:"name"`
	ContentType  string            `json:"contentType"`
	CacheControl string            `json:"cacheControl"`
	Metadata     map[string]string `json:"metadata"`
}

// decodeMetadata decodes an upload's metadata part, as encoding/json would
// into uploadMetadata. The common case, an object whose values are plain
// strings (no escapes) or, for "metadata", an object of them, is read by
// hand; anything else goes to encoding/json.
func decodeMetadata(data []byte) (uploadMetadata, error) {
	if md, ok := decodeMetadataFast(data); ok {
		return md, nil
	}
	var md uploadMetadata
	err := json.Unmarshal(data, &md)
	return md, err
}

// decodeMetadataFast decodes data if it has the common shape, and reports
// whether it did. It accepts only input that encoding/json decodes to the
// same result.
func decodeMetadataFast(data []byte) (md uploadMetadata, ok bool) {
	d := jsonScanner{data: data}
	if !d.consume('{') {
		return md, false
	}
	if d.consume('}') {
		return md, d.end()
	}
	for {
		kb, ok := d.str()
		if !ok || !d.consume(':') {
			return md, false
		}
		switch key := string(kb); key {
		case "name", "contentType", "cacheControl":
			v, ok := d.str()
			if !ok {
				return md, false
			}
			switch key {
			case "name":
				md.Name = string(v)
			case "contentType":
				md.ContentType = string(v)
			default:
				md.CacheControl = string(v)
			}
		case "metadata":
			if !d.consume('{') {
				return md, false
			}
			if md.Metadata == nil {
				md.Metadata = make(map[string]string)
			}
			if !d.consume('}') {
				for {
					k, ok := d.str()
					if !ok || !d.consume(':') {
						return md, false
					}
					v, ok := d.str()
					if !ok {
						return md, false
					}
					md.Metadata[string(k)] = string(v)
					if d.consume('}') {
						break
					}
					if !d.consume(',') {
						return md, false
					}
				}
			}
		default:
			// encoding/json matches field names without regard to case.
			if strings.EqualFold(key, "name") || strings.EqualFold(key, "contentType") ||
				strings.EqualFold(key, "cacheControl") || strings.EqualFold(key, "metadata") {
				return md, false
			}
			if _, ok := d.str(); !ok {
				return md, false
			}
		}
		if d.consume('}') {
			return md, d.end()
		}
		if !d.consume(',') {
			return md, false
		}
	}
}

// jsonScanner reads the few JSON forms decodeMetadataFast accepts.
type jsonScanner struct {
	data []byte
	pos  int
}

func (d *jsonScanner) skipSpace() {
	for d.pos < len(d.data) {
		switch d.data[d.pos] {
		case ' ', '\t', '\r', '\n':
			d.pos++
		default:
			return
		}
	}
}

// consume skips white space and c, if c comes next.
func (d *jsonScanner) consume(c byte) bool {
	d.skipSpace()
	if d.pos < len(d.data) && d.data[d.pos] == c {
		d.pos++
		return true
	}
	return false
}

// end reports whether only white space is left.
func (d *jsonScanner) end() bool {
	d.skipSpace()
	return d.pos == len(d.data)
}

// str reads a string with no escapes, no control characters and valid
// UTF-8.
func (d *jsonScanner) str() ([]byte, bool) {
	if !d.consume('"') {
		return nil, false
	}
	start := d.pos
	for i := start; i < len(d.data); i++ {
		switch c := d.data[i]; {
		case c == '"':
			d.pos = i + 1
			s := d.data[start:i]
			return s, utf8.Valid(s)
		case c == '\\' || c < 0x20:
			return nil, false
		}
	}
	return nil, false
}
