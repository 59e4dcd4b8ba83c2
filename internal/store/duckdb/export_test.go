package duckdb

// SealedRecords is the number of records in the sealed tier (tests).
func (s *Store) SealedRecords() int {
	if s.sealed == nil {
		return 0
	}
	return s.sealed.dir.Records()
}
