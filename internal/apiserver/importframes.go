package apiserver

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
)

// FramedImportContentType is the Content-Type of an ImportRecords body
// whose records are framed by their lengths instead of being JSON strings
// (issue 15): each record is its length in bytes as an unsigned varint
// (encoding/binary's Uvarint, in its shortest form) followed by its bytes, exactly as read from
// its log file, one after the other, nothing before or after. The JSON
// body quotes every record on the client and unquotes it on the server
// (with a text check of the whole body before): together 8-12% of an
// import's CPU through a server, for bytes that arrive unchanged either
// way. The server takes each record as a slice of the body. cairn's
// client sends it and falls back to the JSON body when a server from
// before it refuses it (SerializationException).
const FramedImportContentType = "application/x-cairn-record-frames"

// isFramedImport tells whether r's body is framed records.
func isFramedImport(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == FramedImportContentType {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == FramedImportContentType
}

// importRecordFrames returns the records of a framed ImportRecords body,
// each a clipped slice of body (an append to one cannot reach the next),
// and by index the records refused before audit.Extract, with why: those
// that are not UTF-8 or hold a NUL byte (as the JSON body's text check
// refuses them, but per record rather than for the whole call). A body
// that does not split into frames (a length running past the end, a
// truncated or overlong varint) is a SerializationException; more than
// maxImportRecords records is InvalidParameterException, found without
// reading past the first record too many.
func importRecordFrames(body []byte) (records [][]byte, bad map[int]string, err error) {
	records = make([][]byte, 0, 128)
	for i := 0; i < len(body); {
		n, k := binary.Uvarint(body[i:])
		if k <= 0 || k != uvarintLen(n) { // none, or not in its shortest form
			return nil, nil, &awsjson.Error{Code: awsjson.CodeSerialization, Status: http.StatusBadRequest,
				Message: fmt.Sprintf("The framed records are malformed: no record length at byte offset %d.", i)}
		}
		i += k
		if n > uint64(len(body)-i) {
			return nil, nil, &awsjson.Error{Code: awsjson.CodeSerialization, Status: http.StatusBadRequest,
				Message: fmt.Sprintf("The framed records are malformed: record %d of %d bytes runs past the body's end.", len(records), n)}
		}
		if len(records) == maxImportRecords {
			return nil, nil, audit.Errorf(audit.CodeInvalidParameter, "At most %d records per call.", maxImportRecords)
		}
		rec := body[i : i+int(n) : i+int(n)]
		i += int(n)
		switch {
		case !utf8.Valid(rec):
			bad = setBad(bad, len(records), "The record is not valid UTF-8.")
		case bytes.IndexByte(rec, 0) >= 0:
			bad = setBad(bad, len(records), "The record holds a NUL byte.")
		}
		records = append(records, rec)
	}
	return records, bad, nil
}

func setBad(bad map[int]string, i int, msg string) map[int]string {
	if bad == nil {
		bad = map[int]string{}
	}
	bad[i] = msg
	return bad
}

// uvarintLen is the length of x as an unsigned varint in its shortest form.
func uvarintLen(x uint64) int {
	n := 1
	for ; x >= 0x80; x >>= 7 {
		n++
	}
	return n
}
