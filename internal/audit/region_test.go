package audit

import (
	"regexp"
	"strings"
	"testing"
)

// regionRE is the syntax of every partition's regionRegex in botocore's
// endpoints data (aws, aws-cn, aws-us-gov, aws-iso*, aws-eusc).
var regionRE = regexp.MustCompile(`^[a-z]{2,4}(-[a-z]+)+-[0-9]{1,2}$`)

func TestValidRegion(t *testing.T) {
	valid := []string{"us-east-1", "us-west-2", "us-gov-west-1", "us-gov-east-1", "cn-north-1", "cn-northwest-1",
		"ap-southeast-5", "ap-east-2", "eusc-de-east-1", "il-central-1", "mx-central-1", "us-isob-east-1",
		"us-iso-west-1", "us-isof-south-1", "eu-isoe-west-1", "eu-central-12"}
	invalid := []string{"", "..", "<script>", "US-EAST-1", "us-east-1/../x", "us-east-1 ", " us-east-1", "us-east-",
		"us-east", "us--east-1", "-us-east-1", "us-east-1-", "us-east-123", "u-east-1", "useast-1", "us_east_1",
		"us-east-1\x00", "us-éast-1", "aws-global", "us-east-1a", "us-1", "us-east-01a", "abcde-east-1",
		strings.Repeat("a", 300), "us-" + strings.Repeat("x", 40) + "-1", "../../etc", "us-east-1\n", "%2e%2e"}
	for _, s := range valid {
		if !ValidRegion(s) {
			t.Errorf("ValidRegion(%q) = false; want true", s)
		}
	}
	for _, s := range append(valid, invalid...) {
		if got, want := ValidRegion(s), len(s) <= MaxRegionLen && regionRE.MatchString(s); got != want {
			t.Errorf("ValidRegion(%q) = %v; the regular expression says %v", s, got, want)
		}
	}
	for _, s := range invalid {
		if ValidRegion(s) {
			t.Errorf("ValidRegion(%q) = true; want false", s)
		}
	}
}

// FuzzValidRegion checks ValidRegion against the regular expression it
// implements, and that whatever it accepts is safe in a path segment and
// an S3 key: lowercase letters, digits and inner hyphens.
func FuzzValidRegion(f *testing.F) {
	for _, s := range []string{"us-east-1", "..", "us-gov-west-1", "eusc-de-east-1", "a-b-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxRegionLen && regionRE.MatchString(s)
		if got := ValidRegion(s); got != want {
			t.Fatalf("ValidRegion(%q) = %v; want %v", s, got, want)
		}
		if !want {
			return
		}
		if len(s) > MaxRegionLen || strings.Trim(s, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			strings.Contains(s, "--") || strings.HasPrefix(s, "-") || strings.Count(s, "-") < 2 {
			t.Fatalf("ValidRegion(%q) = true", s)
		}
	})
}

// recordRegionRE is ValidRecordRegion's syntax.
var recordRegionRE = regexp.MustCompile(`^[a-z][a-z0-9]*(-[a-z0-9]+){2,}$`)

func TestValidRecordRegion(t *testing.T) {
	// Every AWS region, and the anonymised regions of published real logs.
	valid := []string{"us-east-1", "us-gov-west-1", "eusc-de-east-1", "us-isof-south-1", "us-north-2r",
		"sagov-westsouth-1r", "apiso-northsouth-3r", "ap-isob-central-3r", "me-isob-eastcentral-1r", "a-b-c"}
	invalid := []string{"", "..", "aws-global", "US-EAST-1", "us-east-1 ", "us--east-1", "-us-east-1", "us-east-1-",
		"us_east_1", "1us-east-1", "us-east-1/../x", "us.east.1", "us-éast-1", "us-east-1\x00", "us-east-1\n",
		strings.Repeat("a-", 20) + "a", "us-east", "global"}
	for _, s := range valid {
		if !ValidRecordRegion(s) {
			t.Errorf("ValidRecordRegion(%q) = false; want true", s)
		}
	}
	for _, s := range invalid {
		if ValidRecordRegion(s) {
			t.Errorf("ValidRecordRegion(%q) = true; want false", s)
		}
	}
}

// FuzzValidRecordRegion checks ValidRecordRegion against its regular
// expression, and that every ValidRegion is a ValidRecordRegion.
func FuzzValidRecordRegion(f *testing.F) {
	for _, s := range []string{"us-east-1", "us-north-2r", "aws-global", "a--b-c", "-a-b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want := len(s) <= MaxRegionLen && recordRegionRE.MatchString(s)
		if got := ValidRecordRegion(s); got != want {
			t.Fatalf("ValidRecordRegion(%q) = %v; want %v", s, got, want)
		}
		if ValidRegion(s) && !want {
			t.Fatalf("ValidRegion(%q) but not ValidRecordRegion", s)
		}
	})
}

func TestCheckImported(t *testing.T) {
	for _, tc := range []struct {
		account, region string
		ok              bool
	}{
		{"123456789012", "us-east-1", true},
		{"000000000000", "us-north-2r", true},
		{"12345678901", "us-east-1", false},
		{"1234567890123", "us-east-1", false},
		{"12345678901a", "us-east-1", false},
		{"../../../etc", "us-east-1", false},
		{"ANONYMOUS_PRINCIPAL", "us-east-1", false},
		{"１２３４５６７８９０１２", "us-east-1", false},
		{"123456789012", "aws-global", false},
	} {
		r := Record{Account: tc.account, Region: tc.region}
		if err := CheckImported(&r); (err == nil) != tc.ok {
			t.Errorf("CheckImported(%q, %q) = %v; want ok %v", tc.account, tc.region, err, tc.ok)
		}
	}
}
