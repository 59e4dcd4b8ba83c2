// Package audit is cairn's domain: the CloudTrail record (Event), the indexed
// form in which cairn stores it (Record), lookups (Query, Page), the Store
// port every storage backend implements, and the errors the domain speaks;
// with them the small helpers every layer shares: NewID (the one random
// UUID generator) and Clip/Truncate (the one way to shorten text without
// splitting a UTF-8 character).
//
// It depends on the standard library and go-json-experiment (the JSON
// scanner that reads records without changing their bytes) only, and on no
// other package of cairn: internal/archtest keeps it so. AWS wire names (NextToken,
// LookupAttributes) stay at the edges; the domain uses its own words.
package audit
