package audit

import (
	"encoding/binary"
	"math/bits"
	"unicode/utf8"
	"unsafe"
)

// The field scanner: Extract's fast path. It reads the few members Extract
// needs straight from the record's bytes and checks the rest of the record
// is well-formed JSON, without decoding it; its strings are substrings of
// the record (no copies). It gives up — and Extract decodes the record as
// before, with a JSON library — on anything it is not sure to read the way
// that decoding does: a member it reads that is repeated, escaped, not
// valid UTF-8, null or of another type than usual; a name with an escape;
// anything that is not plain JSON; nesting deeper than scanMaxDepth. So it
// never accepts what the decoding refuses nor reads a value differently
// (TestScanMatchesDecoding, FuzzScanMatchesDecoding); it only makes the
// common record cheap.

// scanMaxDepth is the deepest nesting the scanner follows; deeper records
// are left to the decoder (which allows 10,000).
const scanMaxDepth = 200

// scanned is what the scanner reads from a record: the members of
// extractView, identityView and resourceView, and the raw
// requestParameters and responseElements for derived resources.
type scanned struct {
	eventTime, eventSource, eventName, awsRegion, eventID string
	eventType, eventCategory, recipientAccountID          string
	readOnly, managementEvent                             []byte
	id                                                    identityView
	onBehalfOf                                            string
	insight                                               bool // an insightDetails object
	insightSource, insightName                            string
	resources                                             []resourceView
	resourcesMember                                       bool // a resources member of any value
	requestParameters, responseElements                   []byte
}

// recordScanner walks one record. s aliases b.
type recordScanner struct {
	b     []byte
	s     string
	i     int
	depth int
}

// scanRecord reads raw into v; false when Extract must decode raw instead.
func scanRecord(raw []byte, v *scanned) bool {
	if len(raw) == 0 {
		return false
	}
	sc := recordScanner{b: raw, s: unsafe.String(unsafe.SliceData(raw), len(raw))}
	sc.ws()
	if !sc.top(v) {
		return false
	}
	sc.ws()
	return sc.i == len(sc.b)
}

// Member bits, to give up on a repeated member.
const (
	mEventTime = 1 << iota
	mEventSource
	mEventName
	mAWSRegion
	mEventID
	mEventType
	mEventCategory
	mRecipient
	mReadOnly
	mManagement
	mUserIdentity
	mResources
	mInsight
	mRequestParameters
	mResponseElements
)

// memberBit is the bit of a top-level member the scanner reads, 0 for
// any other member.
func memberBit(name string) uint32 {
	switch name {
	case "eventTime":
		return mEventTime
	case "eventSource":
		return mEventSource
	case "eventName":
		return mEventName
	case "awsRegion":
		return mAWSRegion
	case "eventID":
		return mEventID
	case "eventType":
		return mEventType
	case "eventCategory":
		return mEventCategory
	case "recipientAccountId":
		return mRecipient
	case "readOnly":
		return mReadOnly
	case "managementEvent":
		return mManagement
	case "userIdentity":
		return mUserIdentity
	case "resources":
		return mResources
	case "insightDetails":
		return mInsight
	case "requestParameters":
		return mRequestParameters
	case "responseElements":
		return mResponseElements
	}
	return 0
}

// stringMember is where the string member of bit goes, nil when the
// member is not a plain string.
func (v *scanned) stringMember(bit uint32) *string {
	switch bit {
	case mEventTime:
		return &v.eventTime
	case mEventSource:
		return &v.eventSource
	case mEventName:
		return &v.eventName
	case mAWSRegion:
		return &v.awsRegion
	case mEventID:
		return &v.eventID
	case mEventType:
		return &v.eventType
	case mEventCategory:
		return &v.eventCategory
	case mRecipient:
		return &v.recipientAccountID
	}
	return nil
}

// rawMember is where the raw JSON of member bit goes, nil when the member
// is not kept raw.
func (v *scanned) rawMember(bit uint32) *[]byte {
	switch bit {
	case mReadOnly:
		return &v.readOnly
	case mManagement:
		return &v.managementEvent
	case mRequestParameters:
		return &v.requestParameters
	case mResponseElements:
		return &v.responseElements
	}
	return nil
}

func (sc *recordScanner) top(v *scanned) bool {
	var seen uint32
	return sc.object(func(name string) bool {
		bit := memberBit(name)
		if bit == 0 {
			return sc.skip()
		}
		if seen&bit != 0 {
			return false // a repeated member: the decoder decides
		}
		seen |= bit
		if dst := v.stringMember(bit); dst != nil {
			return sc.plainString(dst)
		}
		if dst := v.rawMember(bit); dst != nil {
			*dst = sc.rawValue()
			return *dst != nil
		}
		switch bit {
		case mUserIdentity:
			if sc.peek() != '{' {
				return sc.skip()
			}
			return sc.identity(v)
		case mResources:
			v.resourcesMember = true
			if sc.peek() != '[' {
				return sc.skip()
			}
			return sc.resources(v)
		default: // mInsight
			if sc.peek() != '{' {
				return false // null or another type: the decoder decides
			}
			v.insight = true
			var got uint32
			return sc.object(func(name string) bool {
				switch name {
				case "eventSource":
					return got&1 == 0 && sc.plainString(&v.insightSource) && set(&got, 1)
				case "eventName":
					return got&2 == 0 && sc.plainString(&v.insightName) && set(&got, 2)
				}
				return sc.skip()
			})
		}
	})
}

func set(bits *uint32, bit uint32) bool {
	*bits |= bit
	return true
}

func (sc *recordScanner) identity(v *scanned) bool {
	var got uint32
	return sc.object(func(name string) bool {
		var dst *string
		var bit uint32
		switch name {
		case "type":
			dst, bit = &v.id.Type, 1
		case "principalId":
			dst, bit = &v.id.PrincipalID, 2
		case "arn":
			dst, bit = &v.id.ARN, 4
		case "accountId":
			dst, bit = &v.id.AccountID, 8
		case "accessKeyId":
			dst, bit = &v.id.AccessKeyID, 16
		case "userName":
			dst, bit = &v.id.UserName, 32
		case "onBehalfOf":
			if got&64 != 0 || sc.peek() != '{' {
				return false
			}
			got |= 64
			var obo uint32
			return sc.object(func(name string) bool {
				if name == "userId" {
					return obo == 0 && sc.plainString(&v.onBehalfOf) && set(&obo, 1)
				}
				return sc.skip()
			})
		default:
			return sc.skip()
		}
		return got&bit == 0 && sc.plainString(dst) && set(&got, bit)
	})
}

func (sc *recordScanner) resources(v *scanned) bool {
	return sc.array(func() bool {
		if sc.peek() != '{' {
			return false
		}
		var x resourceView
		var got uint32
		ok := sc.object(func(name string) bool {
			var dst *string
			var bit uint32
			switch name {
			case "ARN":
				dst, bit = &x.ARN, 1
			case "ARNPrefix":
				dst, bit = &x.ARNPrefix, 2
			case "type":
				dst, bit = &x.Type, 4
			default:
				return sc.skip()
			}
			return got&bit == 0 && sc.plainString(dst) && set(&got, bit)
		})
		if !ok {
			return false
		}
		v.resources = append(v.resources, x)
		return true
	})
}

// enter steps into the object or array that starts at sc.i, no deeper
// than scanMaxDepth (ok false beyond), up to its first member; an empty
// one (end next) it also leaves, and says so.
func (sc *recordScanner) enter(end byte) (empty, ok bool) {
	sc.i++
	sc.depth++
	if sc.depth > scanMaxDepth {
		return false, false
	}
	sc.ws()
	if sc.peek() == end {
		sc.i++
		sc.depth--
		return true, true
	}
	return false, true
}

// array reads an array at sc.i (the scanner at its '['), calling each
// with the scanner at each element, which each must read.
func (sc *recordScanner) array(each func() bool) bool {
	if empty, ok := sc.enter(']'); !ok || empty {
		return ok
	}
	for {
		sc.ws()
		if !each() {
			return false
		}
		sc.ws()
		switch sc.peek() {
		case ',':
			sc.i++
		case ']':
			sc.i++
			sc.depth--
			return true
		default:
			return false
		}
	}
}

// object reads an object at sc.i, calling member with each name (the
// scanner then at the value, which member must read).
func (sc *recordScanner) object(member func(name string) bool) bool {
	if sc.peek() != '{' {
		return false
	}
	if empty, ok := sc.enter('}'); !ok || empty {
		return ok
	}
	for {
		sc.ws()
		start, end, plain, ok := sc.str()
		if !ok || !plain {
			return false
		}
		sc.ws()
		if sc.peek() != ':' {
			return false
		}
		sc.i++
		sc.ws()
		if !member(sc.s[start:end]) {
			return false
		}
		sc.ws()
		switch sc.peek() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			sc.depth--
			return true
		default:
			return false
		}
	}
}

// plainString reads a string value without escapes, of valid UTF-8.
func (sc *recordScanner) plainString(dst *string) bool {
	start, end, plain, ok := sc.str()
	if !ok || !plain || !utf8.ValidString(sc.s[start:end]) {
		return false
	}
	*dst = sc.s[start:end]
	return true
}

// rawValue returns the bytes of the value at sc.i (nil: give up).
func (sc *recordScanner) rawValue() []byte {
	start := sc.i
	if !sc.skip() {
		return nil
	}
	return sc.b[start:sc.i:sc.i]
}

func (sc *recordScanner) peek() byte {
	if sc.i < len(sc.b) {
		return sc.b[sc.i]
	}
	return 0
}

func (sc *recordScanner) ws() {
	for sc.i < len(sc.b) {
		switch sc.b[sc.i] {
		case ' ', '\t', '\n', '\r':
			sc.i++
		default:
			return
		}
	}
}

// str reads a string at sc.i and returns its content's bounds; plain
// when it has no escape. Bytes that are not UTF-8 are accepted, as the
// decoder accepts them; control characters and bad escapes are not.
func (sc *recordScanner) str() (start, end int, plain, ok bool) {
	if sc.peek() != '"' {
		return 0, 0, false, false
	}
	sc.i++
	start = sc.i
	plain = true
	b := sc.b
	for i := sc.i; i < len(b); i++ {
		// Eight bytes at a time while none is '"', '\\' or a control
		// character; then straight to the first that is (it was found
		// a byte at a time, each step testing eight again: the closing
		// quote is in the middle of a word).
		for i+8 <= len(b) {
			if m := specialMask(binary.LittleEndian.Uint64(b[i:])); m != 0 {
				i += bits.TrailingZeros64(m) >> 3
				break
			}
			i += 8
		}
		if i >= len(b) {
			break
		}
		c := b[i]
		switch {
		case c == '"':
			sc.i = i + 1
			return start, i, plain, true
		case c == '\\':
			plain = false
			if i+1 >= len(b) {
				return 0, 0, false, false
			}
			i++
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return 0, 0, false, false
				}
				var r rune
				for _, h := range b[i+1 : i+5] {
					switch {
					case '0' <= h && h <= '9':
						r = r<<4 | rune(h-'0')
					case 'a' <= h && h <= 'f':
						r = r<<4 | rune(h-'a'+10)
					case 'A' <= h && h <= 'F':
						r = r<<4 | rune(h-'A'+10)
					default:
						return 0, 0, false, false
					}
				}
				if 0xD800 <= r && r <= 0xDFFF {
					return 0, 0, false, false // surrogates: the decoder decides
				}
				i += 4
			default:
				return 0, 0, false, false
			}
		case c < 0x20:
			return 0, 0, false, false
		}
	}
	return 0, 0, false, false
}

// skip checks and passes over the value at sc.i.
func (sc *recordScanner) skip() bool {
	switch c := sc.peek(); {
	case c == '"':
		_, _, _, ok := sc.str()
		return ok
	case c == '{':
		return sc.skipObject()
	case c == '[':
		return sc.array(sc.skip)
	case c == 't':
		return sc.literal("true")
	case c == 'f':
		return sc.literal("false")
	case c == 'n':
		return sc.literal("null")
	case c == '-' || '0' <= c && c <= '9':
		return sc.number()
	}
	return false
}

// skipObject is object with every member skipped, without a closure.
func (sc *recordScanner) skipObject() bool {
	if empty, ok := sc.enter('}'); !ok || empty {
		return ok
	}
	for {
		sc.ws()
		if _, _, _, ok := sc.str(); !ok {
			return false
		}
		sc.ws()
		if sc.peek() != ':' {
			return false
		}
		sc.i++
		sc.ws()
		if !sc.skip() {
			return false
		}
		sc.ws()
		switch sc.peek() {
		case ',':
			sc.i++
		case '}':
			sc.i++
			sc.depth--
			return true
		default:
			return false
		}
	}
}

func (sc *recordScanner) literal(word string) bool {
	if len(sc.s)-sc.i < len(word) || sc.s[sc.i:sc.i+len(word)] != word {
		return false
	}
	sc.i += len(word)
	return true
}

// number passes over a JSON number (RFC 8259 grammar).
func (sc *recordScanner) number() bool {
	b, i := sc.b, sc.i
	digits := func() int {
		n := 0
		for i < len(b) && '0' <= b[i] && b[i] <= '9' {
			i++
			n++
		}
		return n
	}
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		digits()
	default:
		return false
	}
	if i < len(b) && b[i] == '.' {
		i++
		if digits() == 0 {
			return false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		// An exponent may take a number out of float64's range, which
		// the decoding of derived resources refuses: the decoder decides.
		return false
	}
	if i-sc.i > 300 {
		return false // the same, for a long mantissa
	}
	sc.i = i
	return true
}

// specialMask is not 0 when any of the eight bytes of x (little endian:
// the first is the lowest) is '"', '\\' or below 0x20 (SWAR: a byte's high
// bit is set in the mask where it is). Its lowest set bit is the first
// such byte's: a borrow that flags a byte falsely comes from a byte below
// it that is flagged rightly.
func specialMask(x uint64) uint64 {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	zero := func(v uint64) uint64 { return (v - ones) &^ v & highs }
	quote := zero(x ^ (ones * '"'))
	backslash := zero(x ^ (ones * '\\'))
	control := (x - ones*0x20) &^ x & highs
	return quote | backslash | control
}
