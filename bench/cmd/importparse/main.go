// Command importparse measures cairn's importer without a store: every file
// under the given paths is read, gunzipped, split into records and indexed
// with audit.Extract, then handed to a sink that discards it.
//
//	go run ./bench/cmd/importparse DIR...
//
// It prints one line of key=value pairs (records, bytes, seconds) for
// bench/import.sh, and a readable summary on stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"os"
	"runtime/pprof"

	"github.com/cairn-audit/cairn/internal/importer"
	"github.com/cairn-audit/cairn/internal/importer/importertest"
)

func main() {
	workers := flag.Int("workers", 0, "files read at once (default GOMAXPROCS)")
	batch := flag.Int("batch", 0, "records per Append (default the importer's)")
	profile := flag.String("cpuprofile", "", "write a CPU profile to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			log.Fatal(err)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	if flag.NArg() == 0 {
		log.Fatal("usage: importparse [-workers N] [-batch N] PATH...")
	}
	rep, err := importer.Run(context.Background(), flag.Args(), importer.Options{
		Sink: importertest.Discard{}, Workers: *workers, BatchSize: *batch,
	})
	if err != nil {
		log.Print(err)
		return
	}
	if rep.Rejected > 0 || len(rep.Errors) > 0 {
		log.Printf("%d rejected, %d errors; first: %v", rep.Rejected, len(rep.Errors), rep.Errors)
	}
	s := rep.Elapsed.Seconds()
	fmt.Fprintf(os.Stderr, "importer (discard sink): %d records, %d files, %.1f MB in %.2fs: %.0f records/s, %.1f MB/s\n",
		rep.Records, rep.Files, float64(rep.Bytes)/1e6, s, float64(rep.Records)/s, float64(rep.Bytes)/1e6/s)
	fmt.Printf("records=%d bytes=%d seconds=%.3f\n", rep.Records, rep.Bytes, s)
}
