package awsjson

// JSONAppender is a response that writes itself as JSON, byte for byte
// what encoding/json writes for it without HTML escaping (encode), but
// without reflection: WriteJSON calls AppendJSON instead of marshalling a
// value that implements it. LookupEvents answers pages of up to 50
// records, each with its whole record as an escaped string: reflection
// and the encoder's checks were 7.6% of the server's CPU under the lookup
// benchmark (docs/store.md, issue 19).
type JSONAppender interface {
	// AppendJSON appends the value's JSON to b and returns the result.
	AppendJSON(b []byte) []byte
}
