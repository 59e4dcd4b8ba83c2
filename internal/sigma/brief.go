package sigma

// statefulFields are the top-level members of a record that stateful hunts
// and findings read (Stateful documents the fields within them). It is
// never written.
var statefulFields = map[string]bool{
	"eventTime": true, "eventID": true, "eventName": true, "eventSource": true, "awsRegion": true,
	"recipientAccountId": true, "readOnly": true, "errorCode": true, "sourceIPAddress": true, "userIdentity": true,
}

// StatefulFields returns the top-level members of a record that stateful
// hunts and findings read: DecodeFields with them decodes what they need.
func StatefulFields() map[string]bool {
	m := make(map[string]bool, len(statefulFields))
	for k := range statefulFields {
		m[k] = true
	}
	return m
}

// brief reports whether the rule reads only members of statefulFields, so
// that it can run on a record decoded in brief (DecodeFields with them).
func (r *Rule) brief() bool {
	fields, ok := r.Fields()
	if !ok {
		return false
	}
	for _, f := range fields {
		if !statefulFields[f] {
			return false
		}
	}
	return true
}

// decodeBrief decodes the members of a record stateful hunts and findings
// read (and rules for which brief is true).
func decodeBrief(data []byte) (Record, error) {
	return DecodeFields(data, statefulFields)
}
