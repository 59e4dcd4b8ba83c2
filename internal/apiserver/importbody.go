package apiserver

import (
	"bytes"
	"io"

	"github.com/go-json-experiment/json/jsontext"

	"github.com/cairn-audit/cairn/internal/awsjson"
)

// importRecordsBody reads the records of an ImportRecords body of the one
// shape `cairn import` and the SDKs send, {"Records":["...", ...]} with
// any whitespace between tokens, each record unquoted into its own slice,
// with one jsontext token scan. It returns ok false for any other body
// (another member, a repeated one, a value of another type, trailing
// bytes), for a body awsjson.CheckText refuses, and for a record holding a
// \u escape of a UTF-16 surrogate: the caller then decodes the body with
// awsjson.Decode, which answers what is wrong with it. The general decoder
// read the body twice into a tree of interfaces and copied each record
// twice more; it was a third of the handler's CPU in BenchmarkLiveIngest.
func importRecordsBody(body []byte) (records [][]byte, ok bool) {
	if awsjson.CheckText(body) != nil {
		return nil, false
	}
	dec := jsontext.NewDecoder(bytes.NewReader(body))
	next := func(want jsontext.Kind) bool {
		tok, err := dec.ReadToken()
		return err == nil && tok.Kind() == want
	}
	if !next('{') {
		return nil, false
	}
	if name, err := dec.ReadToken(); err != nil || name.Kind() != '"' || name.String() != "Records" {
		return nil, false
	}
	if !next('[') {
		return nil, false
	}
	records = [][]byte{}
	for dec.PeekKind() == '"' {
		v, err := dec.ReadValue()
		if err != nil || escapedSurrogate(v) {
			return nil, false
		}
		rec, err := jsontext.AppendUnquote(nil, v)
		if err != nil {
			return nil, false
		}
		records = append(records, rec)
	}
	if !next(']') || !next('}') {
		return nil, false
	}
	if _, err := dec.ReadToken(); err != io.EOF { // bytes after the object
		return nil, false
	}
	return records, true
}

// escapedSurrogate reports whether the JSON string v holds a \u escape of
// a UTF-16 surrogate (half of a pair): those are the general decoder's to
// judge.
func escapedSurrogate(v []byte) bool {
	for i := 0; i+1 < len(v); i++ {
		if v[i] != '\\' {
			continue
		}
		if r, ok := awsjson.Hex4(v, i+2); ok && v[i+1] == 'u' && r >= 0xD800 && r <= 0xDFFF {
			return true
		}
		i++ // the escaped byte
	}
	return false
}
