package bucket

import "encoding/json"

// marshalMeta and unmarshalMeta are the local folder's metadata sidecar
// (KEY.metadata.json).
func marshalMeta(m map[string]string) ([]byte, error) { return json.Marshal(m) }

func unmarshalMeta(b []byte) (map[string]string, error) {
	var m map[string]string
	err := json.Unmarshal(b, &m)
	return m, err
}
