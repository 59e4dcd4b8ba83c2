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

// CheckRegion returns nil when region is ValidRegion, else an error
// wrapping ErrInvalidRecord that quotes it (clipped to 64 bytes). Doors
// that take whole records from outside (imports) refuse a record with it:
// a region that is no region would become a log key's folder, and no
// caller could ever sign a lookup for it.
func CheckRegion(region string) error {
	if ValidRegion(region) {
		return nil
	}
	if len(region) > 64 {
		region = region[:64] + "..."
	}
	return fmt.Errorf("%w: awsRegion %q is not an AWS region", ErrInvalidRecord, region)
}
