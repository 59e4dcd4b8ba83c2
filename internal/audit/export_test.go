package audit

// ExtractDecoded is Extract with the field scanner off: the decoding it
// replaces, kept as the reference of the differential tests.
func ExtractDecoded(raw []byte) (Record, error) { return extract(raw, false) }

// Scans reports whether the field scanner reads raw itself (false: it
// leaves raw to the decoding).
func Scans(raw []byte) bool {
	var v scanned
	return scanRecord(raw, &v)
}
