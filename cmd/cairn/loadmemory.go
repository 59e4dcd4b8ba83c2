package main

import (
	"regexp"
	"strconv"
	"strings"
)

// loadMemoryLimit bounds DuckDB's memory_limit (lake.memory_limit, 1GB by
// default) during an offline `import --into`: a load's own transaction
// holds its row group uncompressed (~400 MB), and with 1GB DuckDB also
// kept the blocks of every row group the load had written (BASE_TABLE,
// ~55 bytes an event: ~400 MB at 7.2M stored), which it evicts at no cost
// under a lower limit (they are in the file already). Issue 15: a 10M
// load's RSS at most 1 GB (docs/lake.md, "Loads: memory").
const loadMemoryLimit = "512MB"

// sizeRE is a DuckDB size as lake.memory_limit takes it.
var sizeRE = regexp.MustCompile(`^([0-9]{1,6}(?:\.[0-9]{1,3})?)\s?(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)

// sizeBytes is the bytes of a DuckDB size (512MB, 1.5GiB), false if s is
// not one.
func sizeBytes(s string) (float64, bool) {
	m := sizeRE.FindStringSubmatch(strings.TrimSpace(s))
	if m == nil {
		return 0, false
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return 0, false
	}
	unit := map[string]float64{"B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
	return f * unit[m[2]], true
}

// lowerSize returns the smaller of two DuckDB sizes; a that cannot be read
// (or is empty: the engine's default) gives b.
func lowerSize(a, b string) string {
	x, ok := sizeBytes(a)
	if !ok {
		return b
	}
	if y, ok := sizeBytes(b); ok && y < x {
		return b
	}
	return a
}
