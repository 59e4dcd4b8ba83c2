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
	paths, ok := r.paths()
	if !ok {
		return false
	}
	for _, p := range paths {
		if !inTree(briefTree, p) {
			return false
		}
	}
	return true
}

// paths returns every field path the rule reads; false when it reads the
// whole record (keywords).
func (r *Rule) paths() ([][]string, bool) {
	var out [][]string
	for i := range r.sels {
		s := &r.sels[i]
		if len(s.keywords) > 0 {
			return nil, false
		}
		for _, and := range s.alts {
			for j := range and {
				out = append(out, and[j].path)
				for _, ref := range and[j].refs {
					out = append(out, ref.path)
				}
			}
		}
	}
	return out, true
}

// treeOf is briefTree with every path the rules read: decoding it gives
// the rules what the whole record gives them. Nil (the whole record) when
// a rule reads the whole record.
func treeOf(rules []*Rule) fieldTree {
	t := copyTree(briefTree)
	for _, r := range rules {
		paths, ok := r.paths()
		if !ok {
			return nil
		}
		for _, p := range paths {
			if len(p) == 0 {
				return nil
			}
			addPath(t, p)
		}
	}
	return t
}

func copyTree(t fieldTree) fieldTree {
	if t == nil {
		return nil
	}
	out := make(fieldTree, len(t))
	for k, sub := range t {
		out[k] = copyTree(sub)
	}
	return out
}

// addPath adds path to t (a tree of its own, not briefTree): the member
// it ends at is decoded whole.
func addPath(t fieldTree, path []string) {
	for i, p := range path {
		sub, ok := t[p]
		if ok && sub == nil {
			return // decoded whole already
		}
		if i == len(path)-1 {
			t[p] = nil
			return
		}
		if !ok {
			sub = fieldTree{}
			t[p] = sub
		}
		t = sub
	}
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

// Fields says what of a record to decode for some rules: what they read
// and what stateful hunts and findings read (FieldsFor). Its zero value
// decodes the whole record.
type Fields struct {
	tree fieldTree // nil: the whole record
	c    *ctree    // tree compiled
}

// FieldsFor returns what to decode of a record for rules to find in it
// what they find in the whole record, with the brief fields (DecodeBrief)
// that stateful hunts and findings read; for no rules, just those. A rule
// with keywords reads the whole record.
func FieldsFor(rules []*Rule) Fields {
	t := treeOf(rules)
	return Fields{tree: t, c: compileTree(t, true)}
}

// Decode decodes what f says of a record, as DecodeFields would decode
// those members.
func (d *Decoder) Decode(b []byte, f Fields) (Record, error) { return d.decode(b, f.c) }
