// Command blocklayout measures Event History in a row-per-block layout
// (issue 15, session 28): it reads an imported store through the store's
// own package (read only: the records in append order and Lookup), writes
// one DuckDB row per record block into a file of its own (the block's
// records with their IDs and times inside it, a Bloom filter of its
// attribute values, its time bounds and readOnly counts beside it),
// CHECKPOINTs, prints the file's bytes a record by column and its ratio to
// the .json.gz, then answers LookupEvents-shaped queries of each
// attribute kind from that file and from the store, alternately, checks
// that both answer the same and prints each one's p50 and p99.
//
// Usage: blocklayout -store DATA_DIR/events.duckdb -out FILE -gz-bytes N
package main

import (
	"bytes"
	"cmp"
	"context"
	"database/sql"
	"encoding/gob"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	_ "github.com/duckdb/duckdb-go/v2"
	"github.com/klauspost/compress/zstd"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/store/duckdb"
)

func main() {
	var (
		storePath = flag.String("store", "", "the store's DuckDB file (DATA_DIR/events.duckdb); no server may hold it")
		out       = flag.String("out", "", "the row-per-block DuckDB file to write (must not exist) or, with -reuse, to read")
		reuse     = flag.Bool("reuse", false, "read -out as it is instead of writing it")
		gzBytes   = flag.Int64("gz-bytes", 0, "bytes of the .json.gz the store was imported from (for the ratio)")
		blockKiB  = flag.Int("block-kib", 128, "close a block once its content passes this")
		bits      = flag.Float64("bits", 10, "filter bits per distinct value of a block (event IDs apart)")
		idBits    = flag.Float64("id-bits", 10, "filter bits per event ID of a block")
		level     = flag.String("level", "default", "zstd level: fastest, default, better, best")
		side      = flag.Bool("side-file", false, "keep the blocks' bytes in FILE.data beside the DuckDB file, the rows holding their place")
		group     = flag.Int("group-hours", 1, "hours a block may span")
		idColumn  = flag.Bool("id-column", false, "keep every event ID and time in the block even when its JSON holds them")
		perKind   = flag.Int("queries", 20, "queries of each kind (and each with and without a time range)")
		rounds    = flag.Int("rounds", 3, "times each query runs on each side")
		seed      = flag.Uint64("seed", 1, "seed of the queries' choice")
		probe     = flag.Int("probe-fetch", 0, "only time this many single-block reads of -out, three ways")
	)
	flag.Parse()
	if *probe > 0 {
		if err := probeFetch(context.Background(), *out, *probe, *seed); err != nil {
			fmt.Fprintln(os.Stderr, "blocklayout:", err)
			os.Exit(1)
		}
		return
	}
	if *storePath == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	lv, ok := map[string]zstd.EncoderLevel{"fastest": zstd.SpeedFastest, "default": zstd.SpeedDefault,
		"better": zstd.SpeedBetterCompression, "best": zstd.SpeedBestCompression}[*level]
	if !ok {
		fmt.Fprintln(os.Stderr, "blocklayout: unknown -level", *level)
		os.Exit(2)
	}
	opts := Options{BlockBytes: *blockKiB << 10, BitsPerValue: *bits, IDBits: *idBits, Level: lv, IDColumn: *idColumn, GroupHours: *group, SideFile: *side}
	if err := run(context.Background(), *storePath, *out, *reuse, *gzBytes, opts, *perKind, *rounds, *seed); err != nil {
		fmt.Fprintln(os.Stderr, "blocklayout:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, storePath, out string, reuse bool, gzBytes int64, opts Options, perKind, rounds int, seed uint64) error {
	st, err := duckdb.Open(storePath, duckdb.Options{Cold: true})
	if err != nil {
		return err
	}
	defer st.Close()
	t0 := time.Now()
	smp, err := build(ctx, st, out, reuse, opts, seed)
	if err != nil {
		return err
	}
	fmt.Printf("read the store%s in %.1fs: %d records\n", map[bool]string{false: " and wrote " + out, true: ""}[reuse], time.Since(t0).Seconds(), smp.records)
	if err := report(ctx, out, smp.records, gzBytes, fileSize(storePath)); err != nil {
		return err
	}
	rd, err := openReader(ctx, out, 16<<20)
	if err != nil {
		return err
	}
	defer rd.Close()
	fmt.Printf("blocks' rows in memory (filters and bounds): %.1f MB\n", float64(rd.metaBytes)/1e6)
	qs := smp.queries(perKind, seed)
	return compare(ctx, st, rd, qs, rounds)
}

// sample is what the queries are chosen from: records drawn from the
// store (reservoir), and each partition's event names with their counts.
type sample struct {
	records int64
	recs    []audit.Record
	names   map[partKey]map[string]int
}

func build(ctx context.Context, st *duckdb.Store, out string, reuse bool, opts Options, seed uint64) (*sample, error) {
	if reuse {
		if smp, err := loadSample(out + ".sample"); err == nil {
			return smp, nil
		}
	}
	var w *writer
	var db *sql.DB
	if !reuse {
		if _, err := os.Stat(out); !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%s exists", out)
		}
		var err error
		if db, err = sql.Open("duckdb", out); err != nil {
			return nil, err
		}
		defer db.Close()
		if w, err = newWriter(ctx, db, out+".data", opts); err != nil {
			return nil, err
		}
	}
	smp := &sample{names: map[partKey]map[string]int{}}
	rng := rand.New(rand.NewPCG(seed, 7))
	const keep = 4000
	var after, maxHour int64
	for {
		batch, err := st.ReadAppended(ctx, after, 10000)
		if err != nil {
			return nil, err
		}
		if len(batch) == 0 {
			break
		}
		for i := range batch {
			r := &batch[i].Record
			after = batch[i].Seq
			smp.records++
			k := partKey{r.Account, r.Region, r.Category}
			if smp.names[k] == nil {
				smp.names[k] = map[string]int{}
			}
			smp.names[k][r.EventName]++
			lean := *r
			lean.Raw = nil
			if len(smp.recs) < keep {
				smp.recs = append(smp.recs, lean)
			} else if j := rng.Int64N(smp.records); j < keep {
				smp.recs[j] = lean
			}
			if w == nil {
				continue
			}
			if err := w.add(ctx, r); err != nil {
				return nil, err
			}
			if h := floorDiv(r.Time.Unix(), 3600); h > maxHour {
				maxHour = h
				if err := w.flushBefore(ctx, maxHour-48); err != nil {
					return nil, err
				}
			}
		}
	}
	if w == nil {
		return smp, nil
	}
	if err := w.close(ctx); err != nil {
		return nil, err
	}
	if err := smp.save(out + ".sample"); err != nil {
		return nil, err
	}
	if _, err := db.ExecContext(ctx, `CHECKPOINT`); err != nil {
		return nil, err
	}
	s := w.stats
	fmt.Printf("blocks %d (%.1f records each), content %.1f B a record, compressed %.1f B a record, filters %.1f + %.1f (IDs) B a record; IDs kept in the block for %d records, times for %d\n",
		s.blocks, float64(s.records)/float64(max(s.blocks, 1)), float64(s.content)/float64(max(s.records, 1)),
		float64(s.compressed)/float64(max(s.records, 1)), float64(s.filters)/float64(max(s.records, 1)), float64(s.idFilters)/float64(max(s.records, 1)), s.flaggedID, s.flaggedTime)
	return smp, nil
}

// report prints the file's bytes by column (pragma_storage_info, as
// bench/cmd/storesize counts them) a record, and the ratios.
func report(ctx context.Context, path string, records, gzBytes, storeBytes int64) error {
	db, err := sql.Open("duckdb", path+"?access_mode=read_only")
	if err != nil {
		return err
	}
	defer db.Close()
	var blockSize, used, free int64
	if err := db.QueryRowContext(ctx, `SELECT block_size, used_blocks, free_blocks FROM pragma_database_size() LIMIT 1`).Scan(&blockSize, &used, &free); err != nil {
		return err
	}
	type seg struct {
		col           string
		block, offset int64
	}
	var segs []seg
	rows, err := db.QueryContext(ctx, `SELECT column_name, block_id, block_offset FROM pragma_storage_info('blocks') WHERE persistent AND block_id >= 0`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var s seg
		if err := rows.Scan(&s.col, &s.block, &s.offset); err != nil {
			rows.Close()
			return err
		}
		segs = append(segs, s)
	}
	rows.Close()
	slices.SortFunc(segs, func(a, b seg) int { return cmp.Or(cmp.Compare(a.block, b.block), cmp.Compare(a.offset, b.offset)) })
	sums := map[string]int64{}
	for i, s := range segs {
		end := blockSize
		if i+1 < len(segs) && segs[i+1].block == s.block {
			end = segs[i+1].offset
		}
		sums[s.col] += end - s.offset
	}
	rows, err = db.QueryContext(ctx, `SELECT column_name, count(DISTINCT b) FROM (SELECT column_name, unnest(additional_block_ids) AS b FROM pragma_storage_info('blocks') WHERE persistent) GROUP BY ALL`)
	if err != nil {
		return err
	}
	for rows.Next() {
		var col string
		var n int64
		if err := rows.Scan(&col, &n); err != nil {
			rows.Close()
			return err
		}
		sums[col+" (overflow)"] += n * blockSize
	}
	rows.Close()
	cols := make([]string, 0, len(sums))
	for c := range sums {
		cols = append(cols, c)
	}
	slices.SortFunc(cols, func(a, b string) int { return cmp.Compare(sums[b], sums[a]) })
	rec := float64(max(records, 1))
	for _, c := range cols {
		fmt.Printf("  %-22s %12d B %8.1f B a record\n", c, sums[c], float64(sums[c])/rec)
	}
	size := fileSize(path) + fileSize(path+".data")
	fmt.Printf("file %d B (%d blocks of %d used, %d free; with FILE.data's %d B): %.1f B a record", size, used, blockSize, free, fileSize(path+".data"), float64(size)/rec)
	if gzBytes > 0 {
		fmt.Printf(", %.3fx the .json.gz (%d B); the store's file %d B, %.3fx", float64(size)/float64(gzBytes), gzBytes, storeBytes, float64(storeBytes)/float64(gzBytes))
	}
	fmt.Println()
	return nil
}

// savedSample is a sample as a file: a run with -reuse takes its queries
// from it instead of reading the store again (10M records: minutes).
type savedSample struct {
	Records int64
	Recs    []audit.Record
	Names   map[string]int // account, region, category, name joined by NUL
}

func (s *sample) save(path string) error {
	x := savedSample{Records: s.records, Recs: s.recs, Names: map[string]int{}}
	for k, m := range s.names {
		for n, c := range m {
			x.Names[strings.Join([]string{k.account, k.region, strconv.Itoa(int(k.category)), n}, "\x00")] = c
		}
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(&x); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}

func loadSample(path string) (*sample, error) {
	p, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var x savedSample
	if err := gob.NewDecoder(bytes.NewReader(p)).Decode(&x); err != nil {
		return nil, err
	}
	s := &sample{records: x.Records, recs: x.Recs, names: map[partKey]map[string]int{}}
	for k, c := range x.Names {
		f := strings.Split(k, "\x00")
		if len(f) != 4 {
			return nil, fmt.Errorf("%s: damaged", path)
		}
		cat, err := strconv.Atoi(f[2])
		if err != nil {
			return nil, fmt.Errorf("%s: damaged", path)
		}
		pk := partKey{f[0], f[1], audit.Category(cat)}
		if s.names[pk] == nil {
			s.names[pk] = map[string]int{}
		}
		s.names[pk][f[3]] = c
	}
	return s, nil
}

// query is one lookup of a kind.
type query struct {
	kind string
	q    audit.Query
}

func (s *sample) queries(perKind int, seed uint64) []query {
	rng := rand.New(rand.NewPCG(seed, 11))
	var out []query
	add := func(kind string, r *audit.Record, attrs ...audit.Attribute) {
		for _, ranged := range []bool{false, true} {
			q := audit.Query{Account: r.Account, Region: r.Region, Category: r.Category, Limit: 50, Attributes: attrs}
			name := kind
			if ranged {
				q.Start, q.End = r.Time.Add(-7*24*time.Hour), r.Time
				name += " 7d"
			}
			out = append(out, query{name, q})
		}
	}
	pick := func(ok func(r *audit.Record) bool) *audit.Record {
		for range 1000 {
			r := &s.recs[rng.IntN(len(s.recs))]
			if ok(r) {
				return r
			}
		}
		return nil
	}
	type kind struct {
		name  string
		value func(r *audit.Record) (audit.AttributeKey, string)
	}
	kinds := []kind{
		{"EventId", func(r *audit.Record) (audit.AttributeKey, string) { return audit.AttrEventID, r.EventID }},
		{"EventName", func(r *audit.Record) (audit.AttributeKey, string) { return audit.AttrEventName, r.EventName }},
		{"Username", func(r *audit.Record) (audit.AttributeKey, string) { return audit.AttrUsername, r.Username }},
		{"AccessKeyId", func(r *audit.Record) (audit.AttributeKey, string) { return audit.AttrAccessKeyID, r.AccessKeyID }},
		{"ResourceName", func(r *audit.Record) (audit.AttributeKey, string) {
			if len(r.Resources) == 0 {
				return audit.AttrResourceName, ""
			}
			return audit.AttrResourceName, r.Resources[rng.IntN(len(r.Resources))].Name
		}},
		{"EventSource", func(r *audit.Record) (audit.AttributeKey, string) { return audit.AttrEventSource, r.EventSource }},
		{"ReadOnly", func(r *audit.Record) (audit.AttributeKey, string) {
			if r.ReadOnly == audit.Unset {
				return audit.AttrReadOnly, ""
			}
			return audit.AttrReadOnly, r.ReadOnly.String()
		}},
	}
	type rareName struct {
		k    partKey
		name string
	}
	var rare []rareName
	for k, m := range s.names {
		for n, c := range m {
			if n != "" && c >= 20 && int64(c) <= 300*max(1, s.records/1_000_000) {
				rare = append(rare, rareName{k, n})
			}
		}
	}
	slices.SortFunc(rare, func(a, b rareName) int {
		return cmp.Or(cmp.Compare(a.k.account, b.k.account), cmp.Compare(a.k.region, b.k.region), cmp.Compare(a.k.category, b.k.category), cmp.Compare(a.name, b.name))
	})
	for range perKind {
		for _, k := range kinds {
			var key audit.AttributeKey
			var v string
			r := pick(func(r *audit.Record) bool { key, v = k.value(r); return v != "" })
			if r != nil {
				add(k.name, r, audit.Attribute{Key: key, Value: v})
			}
		}
		// A rare event name: one its partition holds 20 to 300 times a
		// million records (the bench set repeats its records, so at 10M
		// no name is held fewer than about 200 times),
		// chosen from the counts (a sample of 4,000 seldom holds one at
		// 10M), the range ending at a sampled record of its partition.
		if r := pick(func(r *audit.Record) bool { return true }); r != nil && len(rare) > 0 {
			x := rare[rng.IntN(len(rare))]
			if p := pick(func(o *audit.Record) bool { return partKey{o.Account, o.Region, o.Category} == x.k }); p != nil {
				r = p
			}
			q := audit.Record{Account: x.k.account, Region: x.k.region, Category: x.k.category, Time: r.Time}
			add("EventName rare", &q, audit.Attribute{Key: audit.AttrEventName, Value: x.name})
		}
		add("none", &s.recs[rng.IntN(len(s.recs))])
	}
	return out
}

// compare runs every query on the store and on the blocks file, one after
// the other, rounds times, checks the pages are equal and prints p50 and
// p99 of each side by kind.
func compare(ctx context.Context, st *duckdb.Store, rd *reader, qs []query, rounds int) error {
	type times struct{ store, blocks, warmStore, warmBlocks []time.Duration }
	by := map[string]*times{}
	var kinds []string
	var decoded, considered, fetched, runs int
	var fetch time.Duration
	for round := range rounds {
		for _, x := range qs {
			t := by[x.kind]
			if t == nil {
				t = &times{}
				by[x.kind] = t
				kinds = append(kinds, x.kind)
			}
			t0 := time.Now()
			page, err := st.Lookup(ctx, x.q)
			d := time.Since(t0)
			if err != nil {
				return err
			}
			t.store = append(t.store, d)
			if round > 0 {
				t.warmStore = append(t.warmStore, d)
			}
			t0 = time.Now()
			got, ls, err := rd.lookup(ctx, &x.q)
			d = time.Since(t0)
			if err != nil {
				return err
			}
			t.blocks = append(t.blocks, d)
			if round > 0 {
				t.warmBlocks = append(t.warmBlocks, d)
			}
			decoded += ls.decoded
			fetched += ls.fetched
			fetch += ls.fetch
			considered += ls.considered
			runs++
			if err := samePage(got, page.Records); err != nil {
				return fmt.Errorf("round %d, %s %+v: %w", round, x.kind, x.q.Attributes, err)
			}
		}
	}
	fmt.Printf("%d lookups a side, every page equal to the store's; blocks file: %.1f blocks decoded, %.1f considered a lookup; %d fetched, %.2f ms each\n",
		runs, float64(decoded)/float64(runs), float64(considered)/float64(runs), fetched, ms(fetch)/float64(max(fetched, 1)))
	fmt.Printf("%-20s %6s %12s %12s %12s %12s   %s\n", "kind", "n", "store p50", "store p99", "blocks p50", "blocks p99", "rounds after the first: n, store p50 p99, blocks p50 p99")
	for _, k := range kinds {
		t := by[k]
		fmt.Printf("%-20s %6d %10.2fms %10.2fms %10.2fms %10.2fms   %4d %8.2f %8.2f %8.2f %8.2f\n", k, len(t.store), ms(pct(t.store, 50)), ms(pct(t.store, 99)), ms(pct(t.blocks, 50)), ms(pct(t.blocks, 99)),
			len(t.warmStore), ms(pct(t.warmStore, 50)), ms(pct(t.warmStore, 99)), ms(pct(t.warmBlocks, 50)), ms(pct(t.warmBlocks, 99)))
	}
	return nil
}

func samePage(got, want []audit.Record) error {
	if len(got) != len(want) {
		return fmt.Errorf("%d records, the store %d", len(got), len(want))
	}
	for i := range got {
		if err := sameRecord(&got[i], &want[i]); err != nil {
			return fmt.Errorf("record %d (%s): %w", i, want[i].EventID, err)
		}
	}
	return nil
}

func sameRecord(a, b *audit.Record) error {
	switch {
	case string(a.Raw) != string(b.Raw):
		return errors.New("raw differs")
	case a.EventID != b.EventID || !a.Time.Equal(b.Time):
		return fmt.Errorf("id or time differ: %s %v, the store %s %v", a.EventID, a.Time, b.EventID, b.Time)
	case a.Account != b.Account || a.Region != b.Region || a.Category != b.Category:
		return errors.New("account, region or category differ")
	case a.EventName != b.EventName || a.EventSource != b.EventSource || a.Username != b.Username ||
		a.AccessKeyID != b.AccessKeyID || a.ReadOnly != b.ReadOnly:
		return errors.New("fields differ")
	case !slices.Equal(a.Resources, b.Resources):
		return errors.New("resources differ")
	}
	return nil
}

func pct(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	if len(s) == 0 {
		return 0
	}
	i := (len(s)*p + 99) / 100
	return s[min(max(i-1, 0), len(s)-1)]
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
