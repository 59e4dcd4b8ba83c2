package audit

import "fmt"

// MaxRegionLen bounds a region name. AWS's longest today is 15 bytes
// (us-isof-south-1); 32 leaves room for new partitions.
const MaxRegionLen = 32

// ValidRegion reports whether s is an AWS region name: a partition prefix
// of two to four lowercase letters, one or more lowercase words, and a
// number of one or two digits, separated by hyphens, at most MaxRegionLen
// bytes (us-east-1, us-gov-west-1, cn-north-1, eusc-de-east-1,
// us-isob-east-1). It is the syntax of every partition's regionRegex in
// AWS's endpoints data, not a list, so that new regions work unchanged.
//
// It is the one definition every door uses: a call's SigV4 credential
// scope (API and gateway), imported records' awsRegion, and trail
// delivery's log keys. Pseudo-regions such as aws-global are not regions
// of a record.
func ValidRegion(s string) bool {
	if len(s) < len("us-x-1") || len(s) > MaxRegionLen {
		return false
	}
	// The last part: one or two digits after a hyphen.
	i := len(s) - 1
	for i >= 0 && s[i] >= '0' && s[i] <= '9' {
		i--
	}
	if n := len(s) - 1 - i; n < 1 || n > 2 || i < 0 || s[i] != '-' {
		return false
	}
	words := 0
	start := 0
	for j := 0; j <= i; j++ {
		if j < i && s[j] >= 'a' && s[j] <= 'z' {
			continue
		}
		if j == i || s[j] == '-' {
			n := j - start
			if n == 0 || words == 0 && (n < 2 || n > 4) {
				return false
			}
			words++
			start = j + 1
			continue
		}
		return false
	}
	return words >= 2
}

// ValidRecordRegion reports whether s may be a record's awsRegion: three
// or more words of lowercase ASCII letters and digits separated by single
// hyphens, the first word starting with a letter, at most MaxRegionLen
// bytes. Every ValidRegion is one. It is wider than ValidRegion because
// real logs are handed to responders with regions that are no AWS region:
// publishers anonymise them (us-north-2r, sagov-westsouth-1r: 327 of the
// 4,373 real records in cairn's test data). Such a name is still safe as
// a path segment and an S3 key, and a responder looks it up with the
// AwsRegion lookup attribute; no SigV4 scope can name it (sigv4 keeps
// ValidRegion). Pseudo-regions such as aws-global (two words), empty
// names, upper case, spaces, dots and slashes are refused.
func ValidRecordRegion(s string) bool {
	if len(s) == 0 || len(s) > MaxRegionLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	words, n := 1, 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			n++
		case c == '-' && n > 0:
			words, n = words+1, 0
		default:
			return false
		}
	}
	return n > 0 && words >= 3
}

// CheckRegion returns nil when region is ValidRecordRegion, else an error
// wrapping ErrInvalidRecord that quotes it (clipped to 64 bytes). Doors
// that take whole records from outside (imports) refuse a record with it:
// a region that is no region's name would become a log key's folder, and
// no lookup could name it.
func CheckRegion(region string) error {
	if ValidRecordRegion(region) {
		return nil
	}
	if len(region) > 64 {
		region = region[:64] + "..."
	}
	return fmt.Errorf("%w: awsRegion %q is not a region name (lowercase letters and digits, three or more words joined by hyphens, at most %d bytes)", ErrInvalidRecord, region, MaxRegionLen)
}
