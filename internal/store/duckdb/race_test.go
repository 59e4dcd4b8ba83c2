//go:build race

package duckdb

// raceEnabled: the race detector makes each import of over a row group of
// records (bigImport) take minutes.
const raceEnabled = true
