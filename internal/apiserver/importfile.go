package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"unicode/utf8"

	"github.com/klauspost/compress/gzip"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/awsjson"
	"github.com/cairn-audit/cairn/internal/importer"
)

// FileImportContentType is the Content-Type of an ImportRecords body that
// is one CloudTrail log file's bytes as they are, gzip (issue 15; docs/store.md,
// "Imports through a server, session 15"): the server gunzips and reads it
// with the offline import's reader (importer.ReadFile), checks and stores
// its records as for any ImportRecords call (the caller's account only
// unless a responder's; RecordsAdmitter; one write with the call's own
// record: the store's, answered once its stage has committed, when the
// Recorder is a StoredRecorder, else the journal's), and answers the
// file's report (fileImportOutput). The
// X-Cairn-File-Key header may name the file (its key in the bucket or its
// path, at most 1,024 bytes of text): it is recorded in the call's
// requestParameters. cairn's client sends .json.gz files so; a server from
// before answers SerializationException (the body is not text), and the
// client sends the file's records framed instead.
const FileImportContentType = "application/x-cairn-cloudtrail-gz"

// FileKeyHeader names the file of a FileImportContentType body.
const FileKeyHeader = "X-Cairn-File-Key"

// maxFileDecompressed bounds what one file decompresses to (64 MiB, eight
// times the 8 MiB body limit; CloudTrail's logs compress about 8.5 to 1): a
// gzip bomb is refused once it has produced that much, and a real file
// larger is read by the client (importer.MaxFileDecompressed).
const maxFileDecompressed = importer.MaxFileDecompressed

// codeInvalidLogFile is the error of a file body that is not a gzip log
// file read to its end (not gzip, truncated, corrupt, gzip inside gzip):
// nothing of it is stored. The client then reads the file itself, which
// reports the problem per file as the offline import does.
const codeInvalidLogFile = "InvalidLogFileException"

// isFileImport tells whether r's body is a log file.
func isFileImport(r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	if ct == FileImportContentType {
		return true
	}
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && mt == FileImportContentType
}

// fileImportOutput is the answer to a FileImportContentType call: the
// file's importer.Report, as `cairn import` reports a file it reads.
type fileImportOutput struct {
	Files, Skipped, FileErrors                       int64
	Records, Imported, Duplicates, Rejected, Expired int64
	Groups                                           []fileImportGroup
	// Errors are the file's first errors (at most maxFileErrors): a
	// record's (Record its 1-based position, Code why), or the file's own
	// (Code "").
	Errors        []fileImportError
	ErrorsOmitted int64
}

type fileImportGroup struct {
	Account, Region               string
	Records, Imported, Duplicates int64
	Refused                       int64
	Reasons                       map[string]int64
}

type fileImportError struct {
	Record  int
	Code    string
	Message string
}

// maxFileErrors bounds the errors a file's answer names; the rest are
// counted (ErrorsOmitted).
const maxFileErrors = 100

// gzipGuard reads a gzip stream for importer.ReadFile and keeps what ends
// it other than its end: more than max bytes decompressed (tooLarge), or
// the stream's own error (a truncated or corrupt file).
type gzipGuard struct {
	zr       *gzip.Reader
	n, max   int64
	tooLarge bool
	err      error
}

var errFileTooLarge = errors.New("the file decompresses past its bound")

func (g *gzipGuard) Read(p []byte) (int, error) {
	if g.tooLarge {
		return 0, errFileTooLarge
	}
	n, err := g.zr.Read(p)
	if g.n += int64(n); g.n > g.max {
		g.tooLarge = true
		return 0, errFileTooLarge
	}
	if err != nil && err != io.EOF && g.err == nil {
		g.err = err
	}
	return n, err
}

// importFile imports the log file that is c's body (FileImportContentType).
func (s *Server) importFile(ctx context.Context, c *call) (any, error) {
	body := c.file
	key := c.r.Header.Get(FileKeyHeader)
	if len(key) > 1024 || !utf8.ValidString(key) || awsjson.CheckText([]byte(key)) != nil {
		return nil, audit.Errorf(audit.CodeInvalidParameter, "%s must be text of at most 1024 bytes.", FileKeyHeader)
	}
	invalid := func(format string, args ...any) error {
		return &awsjson.Error{Code: codeInvalidLogFile, Status: http.StatusBadRequest, Message: fmt.Sprintf(format, args...)}
	}
	if len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		return nil, invalid("The log file is not gzip (%s: %s).", FileImportContentType, "a .json.gz file's bytes as they are")
	}
	zr, err := gzip.NewReader(bytes.NewReader(body))
	if err != nil {
		return nil, invalid("The log file is not valid gzip: %v.", err)
	}
	g := &gzipGuard{zr: zr, max: maxFileDecompressed}
	// A log file is never gzip inside gzip: the reader would gunzip it
	// again, past the bound.
	var magic [2]byte
	n, _ := io.ReadFull(g, magic[:])
	switch {
	case g.tooLarge:
	case g.err != nil:
		return nil, invalid("The log file's gzip stream is truncated or corrupt: %v.", g.err)
	case n == 2 && magic == [2]byte{0x1f, 0x8b}:
		return nil, invalid("The log file is gzip inside gzip.")
	}
	f := importer.ReadFile(ctx, key, io.MultiReader(bytes.NewReader(magic[:n]), g),
		importer.Options{MaxErrors: maxFileErrors, MaxErrorsPerFile: maxFileErrors})
	switch {
	case g.tooLarge:
		return nil, &awsjson.Error{Code: awsjson.CodeRequestEntityTooLarge, Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("The log file decompresses to more than %d bytes (%d MiB), the most one call may hold (a gzip bomb?): send its records instead.", maxFileDecompressed, maxFileDecompressed>>20)}
	case g.err != nil:
		return nil, invalid("The log file's gzip stream is truncated or corrupt: %v.", g.err)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// The same rules as the records of a framed or JSON call. A
	// responder's records are all taken, as read (not copied).
	recs := f.Records
	if !c.caller.Responder {
		recs = make([]audit.Record, 0, len(f.Records))
		for i := range f.Records {
			rec := &f.Records[i]
			if rec.Account != c.caller.AccountID {
				f.Refuse(i, "AccountMismatch", fmt.Errorf("refused: AccountMismatch: %s", accountMismatch(rec.Account)))
				continue
			}
			recs = append(recs, *rec)
		}
	}
	if err := s.admitOthers(c, recs); err != nil {
		return nil, err
	}
	params, _ := json.Marshal(struct {
		Records int    `json:"Records"`
		File    string `json:"File,omitempty"`
	}{int(f.Report().Records), key})
	var total audit.AppendResult
	self := func(before audit.AppendResult) func(audit.AppendResult) (audit.Record, error) {
		own := *c
		own.body = params
		ev := s.event(&own, nil)
		failed := int(f.Report().Rejected)
		return func(r audit.AppendResult) (audit.Record, error) {
			r.Inserted += before.Inserted
			r.Duplicates += before.Duplicates
			ev.ResponseElements = importResponse(r, failed)
			return eventRecord(ev)
		}
	}
	if er, ok := s.cfg.Recorder.(EachRecorder); ok && c.durableRecord() && len(recs) > 0 {
		// All at once, with the call's own record, in one write: the
		// store's (answered once its stage has committed; no journal
		// write of them) when the pipeline can, else the journal's;
		// counted by account and region from each record's answer.
		each := er.SubmitRecordedEach
		if sr, ok := s.cfg.Recorder.(StoredRecorder); ok {
			each = sr.SubmitStoredEach
		}
		dup, recorded, ok, err := each(ctx, recs, self(audit.AppendResult{}))
		if ok {
			c.recorded = recorded
			if err != nil {
				return nil, err
			}
			for lo := 0; lo < len(recs); {
				hi := lo + 1
				for hi < len(recs) && recs[hi].Account == recs[lo].Account && recs[hi].Region == recs[lo].Region {
					hi++
				}
				var res audit.AppendResult
				for _, d := range dup[lo:hi] {
					if d {
						res.Duplicates++
					} else {
						res.Inserted++
					}
				}
				total.Inserted += res.Inserted
				total.Duplicates += res.Duplicates
				f.Stored(recs[lo:hi], res)
				lo = hi
			}
			recs = nil
		}
	}
	parts := byGroup(recs)
	// Without per-record answers, each account and region's records are
	// submitted apart (the report's groups): a trail's file holds one of
	// each, so one submission, which carries the call's own record in its
	// journal write; the others, if any, are submitted before it.
	for i, part := range parts {
		var res audit.AppendResult
		var err error
		if sr, ok := s.cfg.Recorder.(SelfRecorder); ok && c.durableRecord() && i == len(parts)-1 {
			var recorded bool
			res, recorded, err = sr.SubmitRecorded(ctx, part, self(total))
			c.recorded = recorded
		} else {
			res, err = s.cfg.Recorder.Submit(ctx, part...)
		}
		if err != nil {
			return nil, err
		}
		total.Inserted += res.Inserted
		total.Duplicates += res.Duplicates
		f.Stored(part, res)
	}
	rep := f.Report()
	c.responseElements = importResponse(total, int(rep.Rejected))
	c.body = params
	return fileOutput(rep), nil
}

// accountMismatch is why a record of account is refused to a caller that
// is not a responder.
func accountMismatch(account string) string {
	return "The record belongs to account " + account + "; a caller imports into its own account only (a responder's key, responder: true in the config, imports any account's)."
}

// byGroup splits records into runs of one account and region, in the
// order each pair first comes.
func byGroup(records []audit.Record) [][]audit.Record {
	type k struct{ account, region string }
	if len(records) == 0 {
		return nil
	}
	first := k{records[0].Account, records[0].Region}
	same := true
	for i := range records {
		if (k{records[i].Account, records[i].Region}) != first {
			same = false
			break
		}
	}
	if same {
		return [][]audit.Record{records}
	}
	idx := map[k]int{}
	var parts [][]audit.Record
	for _, rec := range records {
		key := k{rec.Account, rec.Region}
		i, ok := idx[key]
		if !ok {
			i = len(parts)
			idx[key] = i
			parts = append(parts, nil)
		}
		parts[i] = append(parts[i], rec)
	}
	return parts
}

// fileOutput is the answer of a file's Report.
func fileOutput(rep importer.Report) fileImportOutput {
	out := fileImportOutput{Files: rep.Files, Skipped: rep.Skipped, FileErrors: rep.FileErrors,
		Records: rep.Records, Imported: rep.Imported, Duplicates: rep.Duplicates, Rejected: rep.Rejected,
		Expired: rep.Expired, Groups: make([]fileImportGroup, 0, len(rep.Groups)),
		Errors: make([]fileImportError, 0, len(rep.Errors)), ErrorsOmitted: rep.ErrorsOmitted}
	for _, g := range rep.Groups {
		out.Groups = append(out.Groups, fileImportGroup{g.Account, g.Region, g.Records, g.Imported, g.Duplicates, g.Refused, g.Reasons})
	}
	for _, e := range rep.Errors {
		out.Errors = append(out.Errors, fileImportError{Record: e.Record, Code: e.Code, Message: e.Err.Error()})
	}
	return out
}
