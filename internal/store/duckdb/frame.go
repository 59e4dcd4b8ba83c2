package duckdb

import (
	"fmt"

	"github.com/cairn-audit/cairn/internal/audit"
)

// A stored record (the record column) is one zstd frame holding the
// original JSON followed by the fields a lookup returns beside it, so that
// a lookup fetches one column per row instead of nine: at 1M records a
// 100-hour lookup took 2.6-5.4 ms with the nine and 1.1 ms with one (see
// docs/store.md). The fields repeat values of the JSON, so zstd stores
// them in a few bytes as matches into it.
//
// The frame's content is the record in audit's binary encoding
// (audit.AppendBinary: raw || fields || uint32 LE len(fields)) holding only
// the fields a lookup returns beside the JSON: eventName, eventSource,
// username, accessKeyId, readOnly and resources. Account, region, category,
// time and event ID are columns, so they are left out, and AppendBinary
// writes its version 1, the bytes stores have held from the start
// (testdata/frames-v1.hex).
//
// The filter columns (event_name, username, ...) keep the same values for
// DuckDB to filter on; they are never read back.

// frameContent appends to dst the frame content of r: r.Raw and its
// lookup fields.
func frameContent(dst []byte, r *audit.Record) []byte {
	return audit.AppendBinary(dst, &audit.Record{Raw: r.Raw, EventName: r.EventName, EventSource: r.EventSource,
		Username: r.Username, AccessKeyID: r.AccessKeyID, ReadOnly: r.ReadOnly, Resources: r.Resources})
}

// splitFields parses content (frameContent's) into r: r.Raw and the
// lookup fields; the others are left as they are. r.Raw aliases content.
func splitFields(content []byte, r *audit.Record) error {
	if err := audit.DecodeBinary(content, r); err != nil {
		return fmt.Errorf("stored fields: %w", err)
	}
	return nil
}
