package importer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/cairn-audit/cairn/internal/audit"
)

// Size limits of the parser.
const (
	// maxRecord is the largest record kept; larger ones are skipped
	// without being held in memory and reported.
	maxRecord = audit.MaxRecordSize
	// maxEntry bounds a lookup-events entry (an escaped record and more),
	// a line, or a value of a stream of records.
	maxEntry = 4 * audit.MaxRecordSize
	// maxKey bounds an object key of a container.
	maxKey = 4 << 10
	// maxMember bounds a container member other than Records and Events
	// (NextToken) that is validated; longer ones are skipped unchecked.
	maxMember = 64 << 10
	// maxBuffer is the most the reader buffers.
	maxBuffer = maxEntry + 4*readChunk
)

var (
	// errStop: the yield function asked to stop.
	errStop = errors.New("importer: stopped")
	// errDigest: the file is a CloudTrail digest, not records.
	errDigest = errors.New("a CloudTrail digest file")
	// errEmpty: the file holds nothing but whitespace.
	errEmpty = errors.New("the file is empty")
	// errNotCloudTrail: the file is not in any known shape.
	errNotCloudTrail = errors.New(`not a CloudTrail log file: want {"Records":[...]}, one record per line, a JSON array of records, or the output of aws cloudtrail lookup-events`)
)

// yieldFunc receives each record of a file: num is its 1-based position,
// raw its exact bytes (valid only during the call; nil when err is set), err
// why the record could not be read. It returns false to stop.
type yieldFunc func(num int, raw []byte, err error) bool

// parseError is a problem that ended the reading of a file; Record is the
// record being read when it happened, 0 when it is not about a record.
type parseError struct {
	Record int
	Err    error
}

func (e *parseError) Error() string { return e.Err.Error() }
func (e *parseError) Unwrap() error { return e.Err }

// parse reads one decompressed file and yields its records. The shape is
// found from the content: {"Records":[...]} (several such objects may
// follow each other), {"Events":[{"CloudTrailEvent":"..."}]} from
// lookup-events, a JSON array of records, one record per line, or records
// printed over several lines one after the other. It returns nil, errStop,
// errDigest, errEmpty, errNotCloudTrail, or a *parseError.
func parse(src io.Reader, yield yieldFunc) error {
	return parseWith(newReader(src, maxBuffer), yield)
}

// parseWith is parse reading through rd, whose buffer it reuses.
func parseWith(rd *reader, yield yieldFunc) error {
	return parseLeading(rd, yield, nil)
}

// parseLeading is parseWith offering each record of a Records array to
// lead first.
func parseLeading(rd *reader, yield yieldFunc, lead leadFunc) error {
	p := &parser{rd: rd, yield: yield, lead: lead}
	if bytes.HasPrefix(rd.head(3), []byte("\xef\xbb\xbf")) {
		rd.r += 3 // a UTF-8 byte order mark, as some Windows tools write
	}
	c, err := p.rd.peek()
	switch {
	case err == io.EOF:
		return errEmpty
	case err != nil:
		return p.broken(err)
	}
	switch c {
	case '{':
		head := p.rd.head(8 << 10)
		switch firstKey(head) {
		case "Records", "Events", "NextToken":
			return p.containers()
		}
		if bytes.Contains(head, []byte(`"digestEndTime"`)) && bytes.Contains(head, []byte(`"digestS3Object"`)) {
			return errDigest
		}
		// One record per line, unless the first line is not a whole
		// value: then records are printed over several lines.
		if first, _, found := bytes.Cut(head, []byte("\n")); found && !json.Valid(first) {
			return p.stream()
		}
		return p.lines()
	case '[':
		for {
			if err := p.array(false); err != nil {
				return err
			}
			c, err := p.rd.peek()
			switch {
			case err == io.EOF:
				return nil
			case err != nil:
				return p.broken(err)
			case c != '[':
				return &parseError{Err: fmt.Errorf("unexpected %s after record %d; the rest of the file was not read", describe(c), p.num)}
			}
		}
	}
	return errNotCloudTrail
}

// leadFunc takes record num of a Records array in one pass where it can:
// b holds the buffered bytes from the record's first byte ('{') on, and
// it returns how many of them the record took (0: it left the record,
// which the parser then reads and yields as always) and false to stop.
type leadFunc func(num int, b []byte) (n int, more bool)

type parser struct {
	rd    *reader
	yield yieldFunc
	lead  leadFunc // nil: every record is yielded
	num   int      // records yielded or taken
}

// emit yields the next record.
func (p *parser) emit(raw []byte, err error) error {
	p.num++
	if !p.yield(p.num, raw, err) {
		return errStop
	}
	return nil
}

// broken reports a problem that ends the file at the next record.
func (p *parser) broken(err error) error {
	switch {
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = errors.New("the file ends in the middle of the JSON (truncated?)")
	case errors.Is(err, errTooBig):
		err = errors.New("a value is too large")
	}
	return &parseError{Record: p.num + 1, Err: fmt.Errorf("malformed JSON; the rest of the file was not read: %w", err)}
}

// containers reads {"Records":[...]} or lookup-events objects until the end.
func (p *parser) containers() error {
	for {
		if err := p.container(); err != nil {
			return err
		}
		c, err := p.rd.peek()
		switch {
		case err == io.EOF:
			return nil
		case err != nil:
			return p.broken(err)
		case c != '{':
			return &parseError{Err: fmt.Errorf("unexpected %s after record %d; the rest of the file was not read", describe(c), p.num)}
		}
	}
}

// container reads one object holding Records or Events.
func (p *parser) container() error {
	rd := p.rd
	if err := rd.expect('{'); err != nil {
		return p.broken(err)
	}
	if c, err := rd.peek(); err == nil && c == '}' {
		rd.r++
		return nil
	}
	for {
		key, err := p.key()
		if err != nil {
			return err
		}
		if err := rd.expect(':'); err != nil {
			return p.broken(err)
		}
		switch key {
		case "Records":
			err = p.array(false)
		case "Events":
			err = p.array(true)
		default:
			err = p.skip(key)
		}
		if err != nil {
			return err
		}
		c, err := rd.peek()
		if err != nil {
			return p.broken(err)
		}
		rd.r++
		switch c {
		case ',':
		case '}':
			return nil
		default:
			return p.broken(fmt.Errorf("found %s where ',' or '}' was expected", describe(c)))
		}
	}
}

// key reads an object key.
func (p *parser) key() (string, error) {
	v, err := p.rd.value(maxKey)
	if err != nil {
		return "", p.broken(err)
	}
	var k string
	if v[0] != '"' || json.Unmarshal(v, &k) != nil {
		return "", p.broken(fmt.Errorf("found %s where an object key was expected", describe(v[0])))
	}
	return k, nil
}

// skip reads a member that holds no records.
func (p *parser) skip(key string) error {
	v, err := p.rd.value(maxMember)
	switch {
	case errors.Is(err, errTooBig):
		return nil
	case err != nil:
		return p.broken(err)
	case !json.Valid(v):
		return p.broken(fmt.Errorf("the value of %q is not valid JSON", audit.Clip(key, 64)))
	}
	return nil
}

// array reads a JSON array of records, or of lookup-events entries.
func (p *parser) array(events bool) error {
	rd := p.rd
	c, err := rd.peek()
	if err != nil {
		return p.broken(err)
	}
	if c != '[' {
		return &parseError{Err: fmt.Errorf("the records are not a JSON array (found %s)", describe(c))}
	}
	rd.r++
	if c, err := rd.peek(); err == nil && c == ']' {
		rd.r++
		return nil
	}
	limit := maxRecord
	if events {
		limit = maxEntry
	}
	for {
		if err := p.record(events, limit); err != nil {
			return err
		}
		c, err := rd.peek()
		if err != nil {
			return p.broken(err)
		}
		rd.r++
		switch c {
		case ',':
		case ']':
			return nil
		default:
			return p.broken(fmt.Errorf("found %s where ',' or ']' was expected", describe(c)))
		}
	}
}

// record reads one element of an array of records (or of lookup-events
// entries), offering a record to p.lead first.
func (p *parser) record(events bool, limit int) error {
	rd := p.rd
	if p.lead != nil && !events {
		if c, err := rd.peek(); err == nil && c == '{' {
			n, more := p.lead(p.num+1, rd.buf[rd.r:rd.w])
			if n > 0 {
				rd.r += n
				p.num++
				if !more {
					return errStop
				}
				return nil
			}
		}
	}
	v, err := rd.value(limit)
	switch {
	case errors.Is(err, errTooBig):
		return p.emit(nil, fmt.Errorf("%w: larger than %d bytes", audit.ErrInvalidRecord, limit))
	case err != nil:
		return p.broken(err)
	case events:
		return p.emit(unwrapEvent(v))
	}
	return p.emit(v, nil)
}

// lines reads one record per line; blank lines are not records.
func (p *parser) lines() error {
	for {
		l, err := p.rd.line(maxEntry)
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, errTooBig):
			err = p.emit(nil, fmt.Errorf("%w: a line longer than %d bytes", audit.ErrInvalidRecord, maxEntry))
		case err != nil:
			return p.broken(err)
		default:
			err = p.emit(l, nil)
		}
		if err != nil {
			return err
		}
	}
}

// stream reads JSON values one after the other.
func (p *parser) stream() error {
	for {
		if _, err := p.rd.peek(); err == io.EOF {
			return nil
		}
		v, err := p.rd.value(maxEntry)
		switch {
		case errors.Is(err, errTooBig):
			err = p.emit(nil, fmt.Errorf("%w: larger than %d bytes", audit.ErrInvalidRecord, maxEntry))
		case err != nil:
			return p.broken(err)
		default:
			err = p.emit(v, nil)
		}
		if err != nil {
			return err
		}
	}
}

// unwrapEvent returns the record of a lookup-events entry: its
// CloudTrailEvent string, decoded.
func unwrapEvent(v []byte) ([]byte, error) {
	var e struct {
		CloudTrailEvent *string `json:"CloudTrailEvent"`
	}
	if err := json.Unmarshal(v, &e); err != nil || e.CloudTrailEvent == nil {
		return nil, fmt.Errorf("%w: a lookup-events entry without a CloudTrailEvent string", audit.ErrInvalidRecord)
	}
	return []byte(*e.CloudTrailEvent), nil
}

// firstKey returns the first key of the object head starts, when it is a
// plain string without escapes.
func firstKey(head []byte) string {
	b := bytes.TrimLeft(head, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return ""
	}
	b = bytes.TrimLeft(b[1:], " \t\r\n")
	if len(b) == 0 || b[0] != '"' {
		return ""
	}
	end := bytes.IndexByte(b[1:], '"')
	if end < 0 || bytes.IndexByte(b[1:1+end], '\\') >= 0 {
		return ""
	}
	return string(b[1 : 1+end])
}
