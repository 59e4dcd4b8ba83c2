package audit

import "slices"

// ExtractDecoded is Extract with the field scanner off: the decoding it
// replaces, kept as the reference of the differential tests.
func ExtractDecoded(raw []byte) (Record, error) { return extract(raw, false) }

// Scans reports whether the field scanner reads raw itself (false: it
// leaves raw to the decoding).
func Scans(raw []byte) bool {
	var v scanned
	return scanRecord(raw, &v)
}

// DeriveScan is deriveScan: DeriveResources read by the scanner, ok false
// when it leaves the members to the decoding.
func DeriveScan(source string, readOnly Tri, req, resp []byte) ([]Resource, bool) {
	return deriveScan(source, readOnly, req, resp)
}

// ScannedMembers returns the requestParameters and responseElements the
// field scanner reads from raw (ok false: it leaves raw to the decoding).
func ScannedMembers(raw []byte) (req, resp []byte, ok bool) {
	var v scanned
	if !scanRecord(raw, &v) {
		return nil, nil, false
	}
	return v.requestParameters, v.responseElements, true
}

// DeriveSources are the sources with resource rules, sorted.
func DeriveSources() []string {
	var out []string
	for s := range sourceRules {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}
