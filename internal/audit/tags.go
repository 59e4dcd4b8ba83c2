package audit

import "strings"

// Tag is a resource's tag (trails, event data stores, channels).
type Tag struct {
	Key   string `json:"Key"`
	Value string `json:"Value,omitempty"`
}

// Tag limits, as CloudTrail documents them for trails, event data stores
// and channels: at most MaxTags tags a resource, keys of 1 to 128
// characters not starting with aws:, values of at most 256.
const (
	MaxTags        = 50
	maxTagKeyLen   = 128
	maxTagValueLen = 256
)

// ValidateTags refuses a tag AWS refuses (InvalidTagParameter).
func ValidateTags(tags []Tag) error {
	for _, t := range tags {
		if t.Key == "" || len(t.Key) > maxTagKeyLen || len(t.Value) > maxTagValueLen || strings.HasPrefix(t.Key, "aws:") {
			return Errorf(CodeInvalidTagParameter, "Tag keys must be 1 to %d characters, not starting with aws:, and values at most %d.", maxTagKeyLen, maxTagValueLen)
		}
	}
	return nil
}

// MergeTags returns tags with add applied (tags is not changed): a key it
// has takes the new value. limit is the error when the result holds more
// than MaxTags; what names the resource in its message ("trail").
func MergeTags(tags, add []Tag, limit Code, what string) ([]Tag, error) {
	out := append([]Tag(nil), tags...)
next:
	for _, a := range add {
		for i := range out {
			if out[i].Key == a.Key {
				out[i].Value = a.Value
				continue next
			}
		}
		out = append(out, a)
	}
	if len(out) > MaxTags {
		return nil, Errorf(limit, "A %s can have at most %d tags.", what, MaxTags)
	}
	return out, nil
}

// DropTags returns tags without those of remove: a tag to remove with a
// value removes a tag only if the values match.
func DropTags(tags, remove []Tag) []Tag {
	var kept []Tag
	for _, t := range tags {
		drop := false
		for _, r := range remove {
			if r.Key == t.Key && (r.Value == "" || r.Value == t.Value) {
				drop = true
			}
		}
		if !drop {
			kept = append(kept, t)
		}
	}
	return kept
}
