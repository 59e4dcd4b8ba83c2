package sigma

// briefTree is what stateful hunts and findings read of a record (the
// Stateful documentation lists it): decoding only it skips most of a
// record, userIdentity's session context and attributes included. It is
// never written.
var briefTree = fieldTree{
	"eventTime": nil, "eventID": nil, "eventName": nil, "eventSource": nil, "awsRegion": nil,
	"recipientAccountId": nil, "readOnly": nil, "errorCode": nil, "sourceIPAddress": nil,
	"userIdentity": {
		"type": nil, "arn": nil, "invokedBy": nil, "principalId": nil, "accountId": nil,
		"accessKeyId": nil, "userName": nil,
		"sessionContext": {"ec2RoleDelivery": nil},
	},
}

// StatefulFields returns the top-level members of a record that stateful
// hunts and findings read: DecodeFields with them decodes what they need
// (DecodeBrief decodes less of them).
func StatefulFields() map[string]bool {
	m := make(map[string]bool, len(briefTree))
	for k := range briefTree {
		m[k] = true
	}
	return m
}

// DecodeBrief decodes what stateful hunts and findings read of a record
// (the fields the Stateful documentation lists) and nothing else, as
// DecodeFields would decode them; a rule for which BriefOnly is true finds
// in it what it finds in the whole record.
func DecodeBrief(data []byte) (Record, error) {
	return decodeTree(data, briefTree)
}

// BriefOnly reports whether the rule reads only what DecodeBrief decodes,
// so that it can run on a record decoded in brief.
func (r *Rule) BriefOnly() bool {
	for i := range r.sels {
		s := &r.sels[i]
		if len(s.keywords) > 0 {
			return false
		}
		for _, and := range s.alts {
			for j := range and {
				if !inTree(briefTree, and[j].path) {
					return false
				}
				for _, ref := range and[j].refs {
					if !inTree(briefTree, ref.path) {
						return false
					}
				}
			}
		}
	}
	return true
}

// inTree reports whether a lookup of path in a record decoded with tree
// finds what it finds in the whole record: the path goes through members
// of tree to one decoded whole.
func inTree(tree fieldTree, path []string) bool {
	if len(path) == 0 {
		return false // the record itself
	}
	for _, p := range path {
		sub, ok := tree[p]
		if !ok {
			return false
		}
		if sub == nil {
			return true
		}
		tree = sub
	}
	return false // a member decoded in part
}

// brief reports whether the rule can run on a record decoded in brief.
func (r *Rule) brief() bool { return r.BriefOnly() }

// decodeBrief decodes the members of a record stateful hunts and findings
// read (and rules for which brief is true).
func decodeBrief(data []byte) (Record, error) { return DecodeBrief(data) }
