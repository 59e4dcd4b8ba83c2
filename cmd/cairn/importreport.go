package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"unicode/utf8"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/importer"
)

// Exit statuses of `cairn import` (its --help lists them).
const (
	// exitRefused: the import ran to its end, but records were refused or
	// files could not be read (the report says which and why).
	exitRefused = 1
	// exitStopped: the import stopped before its end (the server or the
	// store failed); what was stored before is kept and reported.
	exitStopped = 255
	// exitInterrupted: interrupted (Ctrl-C, SIGTERM); what was committed
	// is reported.
	exitInterrupted = 130
)

const importExitStatus = `
Exit status:
  0    every record was stored, or was already there
  1    some records were refused or some files could not be read (the
       summary says how many, why, and what to change)
  2    the command line is wrong
  130  interrupted; the records committed until then are kept and reported
  255  the import stopped before its end (server unreachable, store failure)
`

// exitError is an error with the exit status it gives.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// refusalHints say, per reason code, what to change for the records to be
// imported.
var refusalHints = map[string]string{
	"AccountMismatch": "the access key signing the import belongs to another account: import with a responder key " +
		"(responder: true in the config; the key cairn generates without a config is one) or with a key of the records' account",
	importer.ReasonExpired: "the records are older than the destination's retention (an event data store's RetentionPeriod): " +
		"import them into a store with a longer RetentionPeriod",
	importer.ReasonInvalidRecord: "these are not CloudTrail records cairn can store (no eventID, eventTime or account, " +
		"or an awsRegion that is no AWS region): they cannot be imported as they are; the errors name them",
	"Unaccounted": "the destination did not say what became of these records: import again (importing twice adds nothing)",
}

// fileErrorHint is the hint for files that could not be read to their end.
const fileErrorHint = "files could not be read to their end (missing, unreadable, not JSON or gzip, cut short): " +
	"the records before the error were imported; fix or replace the files named and import again"

func hintFor(code string) string {
	if h, ok := refusalHints[code]; ok {
		return h
	}
	return "refused by the destination: the errors above say why"
}

// shown makes a value read from a record safe to print: clipped, and
// quoted when it holds anything but printable characters.
func shown(s string) string {
	if s == "" {
		return "-"
	}
	s = audit.Clip(s, 64)
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if !strconv.IsPrint(r) || r == '\t' || r == ' ' {
			return strconv.Quote(s)
		}
	}
	return s
}

// importHint says what to change for Count records (or files) refused for
// Code to be imported.
type importHint struct {
	Code  string
	Count int64
	Hint  string
}

// importHints returns one hint per reason code of the report's refusals
// (over every account and region, by code), then one for its file errors.
func importHints(rep importer.Report) []importHint {
	reasons := map[string]int64{}
	for _, g := range rep.Groups {
		for c, n := range g.Reasons {
			reasons[c] += n
		}
	}
	hints := []importHint{}
	for _, code := range slices.Sorted(maps.Keys(reasons)) {
		hints = append(hints, importHint{code, reasons[code], hintFor(code)})
	}
	if rep.FileErrors > 0 {
		hints = append(hints, importHint{"FileError", rep.FileErrors, fileErrorHint})
	}
	return hints
}

// importOutcome prints the report (stdout) and the errors and hints
// (stderr), and returns the command's error: nil when every record was
// stored or already there.
func importOutcome(stdout, stderr io.Writer, format string, rep importer.Report, runErr error) error {
	interrupted := runErr != nil && errors.Is(runErr, context.Canceled)
	printReport(stdout, format, rep, interrupted)
	printErrors(stderr, rep)
	switch {
	case interrupted:
		return exitError{exitInterrupted, fmt.Errorf("interrupted: %d records committed (%d new, %d already there) before the stop",
			rep.Imported+rep.Duplicates, rep.Imported, rep.Duplicates)}
	case runErr != nil:
		return exitError{exitStopped, fmt.Errorf("the import stopped: %w (%d records stored before)", runErr, rep.Imported+rep.Duplicates)}
	case rep.Rejected > 0 || rep.Expired > 0 || rep.FileErrors > 0:
		return exitError{exitRefused, fmt.Errorf("%d records rejected (of %d read), %d files could not be read to their end",
			rep.Rejected+rep.Expired, rep.Records, rep.FileErrors)}
	}
	return nil
}

// printErrors prints the first errors of each file, one count for the
// rest of each, and one hint per kind of refusal.
func printErrors(w io.Writer, rep importer.Report) {
	byFile := map[string][]importer.RecordError{}
	for _, e := range rep.Errors {
		byFile[e.File] = append(byFile[e.File], e)
	}
	files := slices.Sorted(maps.Keys(byFile))
	for f := range rep.OmittedByFile {
		if _, ok := byFile[f]; !ok {
			files = append(files, f)
		}
	}
	const maxFiles = 10
	more := ""
	if len(files) > maxFiles {
		var n int64
		for _, f := range files[maxFiles:] {
			n += int64(len(byFile[f])) + rep.OmittedByFile[f]
		}
		more = fmt.Sprintf("cairn: ... and %d more errors in %d other files (--output json lists the first of each)\n", n, len(files)-maxFiles)
		files = files[:maxFiles]
	}
	for _, f := range files {
		es := byFile[f]
		slices.SortFunc(es, func(a, b importer.RecordError) int { return a.Record - b.Record })
		for _, e := range es {
			fmt.Fprintln(w, "cairn:", e.Error())
		}
		if n := rep.OmittedByFile[f]; n > 0 {
			fmt.Fprintf(w, "cairn: %s: ... and %d more errors in this file\n", f, n)
		}
	}
	fmt.Fprint(w, more)
	for _, h := range importHints(rep) {
		if h.Hint == fileErrorHint { // files, not records of a code
			fmt.Fprintf(w, "cairn: hint: %d %s.\n", h.Count, h.Hint)
		} else {
			fmt.Fprintf(w, "cairn: hint: %d %s: %s.\n", h.Count, h.Code, h.Hint)
		}
	}
}

// printReport prints what an import did: per account and region, then in
// total, as a table, JSON or text (the AWS CLI's --output).
func printReport(w io.Writer, format string, rep importer.Report, interrupted bool) {
	switch format {
	case "json":
		type group struct {
			Account, Region                        string
			Records, Imported, Duplicates, Refused int64
			Reasons                                map[string]int64
		}
		groups := make([]group, 0, len(rep.Groups))
		for _, g := range rep.Groups {
			groups = append(groups, group{g.Account, g.Region, g.Records, g.Imported, g.Duplicates, g.Refused, g.Reasons})
		}
		errs := make([]map[string]any, 0, len(rep.Errors))
		for _, e := range rep.Errors {
			errs = append(errs, map[string]any{"File": e.File, "Record": e.Record, "Code": e.Code, "Message": e.Err.Error()})
		}
		omitted := rep.OmittedByFile
		if omitted == nil {
			omitted = map[string]int64{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		enc.Encode(map[string]any{
			"Files": rep.Files, "Skipped": rep.Skipped, "FileErrors": rep.FileErrors, "Records": rep.Records,
			"Imported": rep.Imported, "Duplicates": rep.Duplicates, "Rejected": rep.Rejected, "Expired": rep.Expired,
			"Bytes": rep.Bytes, "Seconds": rep.Elapsed.Seconds(), "Errors": errs, "ErrorsOmitted": rep.ErrorsOmitted,
			"ErrorsOmittedByFile": omitted, "Groups": groups, "Hints": importHints(rep), "Interrupted": interrupted,
		})
		return
	case "text":
		// As the AWS CLI's text output: tab-separated, one line per
		// item, the first column naming what the line is.
		for _, g := range rep.Groups {
			fmt.Fprintf(w, "GROUP\t%s\t%s\t%d\t%d\t%d\t%d\n", shown(g.Account), shown(g.Region), g.Records, g.Imported, g.Duplicates, g.Refused)
			for _, c := range slices.Sorted(maps.Keys(g.Reasons)) {
				fmt.Fprintf(w, "REASON\t%s\t%s\t%s\t%d\n", shown(g.Account), shown(g.Region), shown(c), g.Reasons[c])
			}
		}
		fmt.Fprintf(w, "TOTAL\t%d\t%d\t%d\t%d\t%d\t%d\t%d\t%.1f\n", rep.Files, rep.Skipped, rep.FileErrors, rep.Records,
			rep.Imported, rep.Duplicates, rep.Rejected+rep.Expired, rep.Elapsed.Seconds())
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Account\tRegion\tRecords\tImported\tDuplicates\tRefused\tWhy")
	for _, g := range rep.Groups {
		var why []string
		for _, c := range slices.Sorted(maps.Keys(g.Reasons)) {
			why = append(why, fmt.Sprintf("%s %d", shown(c), g.Reasons[c]))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%s\n", shown(g.Account), shown(g.Region), g.Records, g.Imported, g.Duplicates,
			g.Refused, dash(strings.Join(why, ", ")))
	}
	fmt.Fprintf(tw, "total\t\t%d\t%d\t%d\t%d\t\n", rep.Records, rep.Imported, rep.Duplicates, rep.Rejected+rep.Expired)
	tw.Flush()
	state := ""
	if interrupted {
		state = " (interrupted)"
	}
	fmt.Fprintf(w, "%d files read, %d skipped, %d unreadable; %.1f MB in %.1fs%s\n", rep.Files, rep.Skipped, rep.FileErrors,
		float64(rep.Bytes)/1e6, rep.Elapsed.Seconds(), state)
}
