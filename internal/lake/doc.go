// Package lake is cairn's CloudTrail Lake: event data stores fed from the
// event store's append feed, from imports and from channels
// (PutAuditEvents), and the lifecycle of Lake SQL queries over them.
//
// Lake owns the registry of stores, channels and imports (DIR/lake.json),
// the rewrite of a statement's store references, query scheduling and
// result files, imports and retention. Its events live in an engine behind
// the engine.Engine port (internal/lake/engine): internal/lake/duckdb today,
// which also owns the SQL dialect and the statement check. Lake links no
// database driver; cmd/cairn opens the engine and hands it to Open.
//
// Lake is a feature: it imports no edge. Its methods take the verified
// caller as an audit.Principal (request structs where there are more than
// three knobs) and fail with *audit.Error codes; internal/apiserver serves
// them on the wire. Lake owns its goroutines (queries, imports, ingestion
// and retention): Run returns once they have all returned, and Close
// closes the engine only after that.
package lake
