package main

// loadMemoryLimit bounds DuckDB's memory_limit (lake.memory_limit,
// config.DefaultLakeMemoryLimit: 512MB from session 27, this same 448MB
// since session 35; a file may set more for its server's queries) during
// an offline `import --into`: a load's own transaction
// holds its row group uncompressed (~400 MB), and with 1GB DuckDB also
// kept the blocks of every row group the load had written (BASE_TABLE,
// ~55 bytes an event: ~400 MB at 7.2M stored), which it evicts at no cost
// under a lower limit (they are in the file already). Issue 15: a 10M
// load's RSS at most 1 GB (docs/lake.md, "Loads: memory"). 448MB since
// session 29 (was 512MB, as a server's default then): less of DuckDB's memory
// stays resident, and the open transaction's row group still fits without
// spilling: a 10M load with the session's other steps peaked
// at 925 and 932 MiB against 956 and 963 at 512MB, with no temporary
// files, for 4-8% more wall time (docs/benchmarks.md, "Session 29").
const loadMemoryLimit = "448MB"
