package lake

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// Query results live in files, one per finished query, in the results
// folder (DIR/lake-results, or a temporary folder for a Lake without a data
// dir), never in memory: 8 large results held in memory took a server from
// 117 MB to 2.2 GB. A result is written while the query's rows are
// scanned and read back one page at a time by GetQueryResults.
//
// The encoding is each row's cells in column order, a cell being
// uvarint(len+1) and its bytes, or uvarint(0) for NULL. The reader
// keeps the offset of every indexEvery-th row, so a page seeks near its
// first row.

const (
	resultsDir = "lake-results"
	indexEvery = 256
	// maxPageBytes ends a GetQueryResults page early (at least one row):
	// 1,000 rows of whole records would make one answer hundreds of MB.
	maxPageBytes = 4 << 20
)

// resultFile is a finished query's result on disk.
type resultFile struct {
	path    string
	columns []string
	rows    int
	size    int64   // bytes on disk
	index   []int64 // offset of rows 0, indexEvery, 2*indexEvery...
}

// resultWriter writes a result file row by row.
type resultWriter struct {
	f   *os.File
	w   *bufio.Writer
	res *resultFile
	off int64
	buf []byte
}

func newResultWriter(dir, id string, columns []string) (*resultWriter, error) {
	path := filepath.Join(dir, id+".rows")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lake: result file: %w", err)
	}
	return &resultWriter{f: f, w: bufio.NewWriterSize(f, 64<<10), res: &resultFile{path: path, columns: columns}}, nil
}

// add appends a row (nil cells are NULL).
func (rw *resultWriter) add(row []*string) error {
	if rw.res.rows%indexEvery == 0 {
		rw.res.index = append(rw.res.index, rw.off)
	}
	b := rw.buf[:0]
	for _, c := range row {
		if c == nil {
			b = binary.AppendUvarint(b, 0)
			continue
		}
		b = binary.AppendUvarint(b, uint64(len(*c))+1)
		b = append(b, *c...)
	}
	rw.buf = b
	if _, err := rw.w.Write(b); err != nil {
		return fmt.Errorf("lake: result file: %w", err)
	}
	rw.off += int64(len(b))
	rw.res.rows++
	return nil
}

// finish closes the file and returns the result.
func (rw *resultWriter) finish() (*resultFile, error) {
	err := rw.w.Flush()
	if cerr := rw.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(rw.res.path)
		return nil, fmt.Errorf("lake: result file: %w", err)
	}
	rw.res.size = rw.off
	return rw.res, nil
}

// abort closes and removes the file.
func (rw *resultWriter) abort() {
	rw.f.Close()
	os.Remove(rw.res.path)
}

// page reads rows [start, end), stopping early (after at least one row)
// once maxBytes of values are read; it returns the rows read.
func (r *resultFile) page(start, end, maxBytes int) ([][]*string, error) {
	if start >= end {
		return nil, nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return nil, fmt.Errorf("lake: result file: %w", err)
	}
	defer f.Close()
	at := start / indexEvery * indexEvery
	if _, err := f.Seek(r.index[start/indexEvery], io.SeekStart); err != nil {
		return nil, fmt.Errorf("lake: result file: %w", err)
	}
	br := bufio.NewReaderSize(f, 64<<10)
	var out [][]*string
	size := 0
	for ; at < end && (size < maxBytes || len(out) == 0); at++ {
		row := make([]*string, len(r.columns))
		for i := range row {
			n, err := binary.ReadUvarint(br)
			if err != nil {
				return nil, errCorrupt(err)
			}
			if n == 0 {
				continue
			}
			if n-1 > uint64(r.size) {
				return nil, errCorrupt(nil)
			}
			if at < start {
				if _, err := br.Discard(int(n - 1)); err != nil {
					return nil, errCorrupt(err)
				}
				continue
			}
			b := make([]byte, n-1)
			if _, err := io.ReadFull(br, b); err != nil {
				return nil, errCorrupt(err)
			}
			s := string(b)
			row[i] = &s
			size += len(s) + len(r.columns[i])
		}
		if at >= start {
			out = append(out, row)
		}
	}
	return out, nil
}

func errCorrupt(err error) error {
	if err == nil || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return errors.New("lake: result file is truncated")
	}
	return fmt.Errorf("lake: result file: %w", err)
}
