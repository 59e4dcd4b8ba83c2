package sigma

import (
	"slices"
	"strings"
	"sync"
	"time"
)

// Finding is one hunt's match on one record. Its JSON is what `cairn hunt
// --output json` prints and, inside detect.Finding (which adds findingId
// and detectedAt), a live finding's: one shape, documented in
// docs/hunting.md.
type Finding struct {
	RuleID string   `json:"ruleId"`
	Title  string   `json:"title"`
	Level  string   `json:"level"`
	Tags   []string `json:"tags"` // never null

	EventID     string    `json:"eventID"`
	EventTime   time.Time `json:"eventTime"`
	EventSource string    `json:"eventSource"`
	EventName   string    `json:"eventName"`
	Account     string    `json:"recipientAccountId"`
	Region      string    `json:"awsRegion"`
	Principal   string    `json:"principal"`
	// Detail says why a stateful hunt fired ("12 denied calls in 10m0s");
	// empty for Sigma rules.
	Detail string `json:"detail,omitempty"`
}

// Info describes a hunt the way a Sigma rule's metadata does.
type Info struct {
	ID, Title, Level, Description string
	Tags                          []string
}

// Stateful is a hunt that needs what came before the record (a principal
// never seen, a burst of denied calls), which a per-record Sigma rule
// cannot say. Observe is called once per record, in the order they are
// read, and says whether the hunt fires on rec and why; it keeps bounded
// state. RunBatch may give it only these fields of the record: eventTime,
// eventID, eventName, eventSource, awsRegion, recipientAccountId,
// readOnly, errorCode, sourceIPAddress, and userIdentity's type, arn,
// invokedBy, principalId, accountId, accessKeyId, userName and
// sessionContext.ec2RoleDelivery. A Stateful is used by one goroutine at a
// time.
type Stateful interface {
	Info() Info
	Observe(rec Record) (detail string, fire bool)
}

// Hunt runs Sigma rules and stateful hunts over records. Its zero value
// runs nothing. A Hunt is used by one goroutine at a time.
type Hunt struct {
	Rules    []*Rule
	Stateful []Stateful
	// Report, when set, says whether a record's findings are reported:
	// stateful hunts observe every record (the history before the
	// hunted period is their baseline), rules and reports only the
	// records Report accepts. Nil reports every record.
	Report func(Record) bool

	index    *ruleIndex // built by RunBatch
	indexed  int        // len(Rules) when index was built
	decoders []Decoder  // RunBatch's, one a worker, kept between batches
}

// Run matches rec against every rule and stateful hunt and calls emit for
// each finding.
func (h *Hunt) Run(rec Record, emit func(Finding)) {
	report := h.Report == nil || h.Report(rec)
	for _, s := range h.Stateful {
		detail, fire := s.Observe(rec)
		if fire && report {
			in := s.Info()
			f := FindingOf(rec, in)
			f.Detail = detail
			emit(f)
		}
	}
	if !report {
		return
	}
	for _, r := range h.Rules {
		if r.Match(rec) {
			emit(FindingOf(rec, Info{ID: r.ID, Title: r.Title, Level: r.Level, Tags: r.Tags}))
		}
	}
}

// Input is one record for RunBatch: its JSON and, when it is known
// without decoding the JSON (the store keeps it), its eventName, which lets
// RunBatch decode in full only the records some rule may match.
type Input struct {
	Raw       []byte
	EventName string
}

// ruleIndex says which rules may match a record of a given eventName.
type ruleIndex struct {
	byName map[string][]int // lower-cased eventName -> rules
	any    []int            // rules that may match any eventName
	brief  []int            // of them, those that read only brief fields
	// trees are what to decode of a record of a given eventName for the
	// rules that may match it (treeOf): nil decodes it whole.
	trees map[string]*ctree
	// anyTree is that tree for the names no rule names (the any rules').
	anyTree *ctree
}

func (h *Hunt) buildIndex() {
	if h.index != nil && h.indexed == len(h.Rules) {
		return
	}
	ix := &ruleIndex{byName: map[string][]int{}}
	for i, r := range h.Rules {
		names, ok := r.EventNames()
		if !ok {
			if r.brief() {
				ix.brief = append(ix.brief, i)
			} else {
				ix.any = append(ix.any, i)
			}
			continue
		}
		for _, n := range names {
			ix.byName[n] = append(ix.byName[n], i)
		}
	}
	ix.trees = make(map[string]*ctree, len(ix.byName))
	for n, named := range ix.byName {
		var rules []*Rule
		for _, list := range [][]int{ix.any, ix.brief, named} {
			for _, i := range list {
				rules = append(rules, h.Rules[i])
			}
		}
		ix.trees[n] = compileTree(treeOf(rules), true)
	}
	var anyRules []*Rule
	for _, list := range [][]int{ix.any, ix.brief} {
		for _, i := range list {
			anyRules = append(anyRules, h.Rules[i])
		}
	}
	ix.anyTree = compileTree(treeOf(anyRules), true)
	h.index, h.indexed = ix, len(h.Rules)
}

// RunBatch runs the hunt over records in order, as Run does for each:
// decoding and the (stateless) rules run on workers goroutines, the
// stateful hunts on the caller's, in the batch's order. A record whose
// eventName is given and that no rule may match is decoded only in the
// fields stateful hunts and findings read. Records that are not JSON
// objects are skipped and counted in bad.
func (h *Hunt) RunBatch(in []Input, workers int, emit func(Finding)) (bad int) {
	return h.MatchBatch(in, workers).Emit(emit)
}

// Matched is a batch MatchBatch decoded and matched against the rules,
// waiting for Emit.
type Matched struct {
	h   *Hunt
	res []matchResult
}

type matchResult struct {
	rec      Record
	report   bool
	findings []Finding
}

// MatchBatch is the first stage of RunBatch: it decodes the records and
// runs the (stateless) rules on workers goroutines. Emit is the second:
// the stateful hunts, in the batch's order, and the findings. A caller
// may run Emit of one batch while MatchBatch matches the next, so that
// the serial stage does not leave the other cores idle; MatchBatch calls
// must not overlap one another, and Emit calls must not either and must
// come in the batches' order.
func (h *Hunt) MatchBatch(in []Input, workers int) *Matched {
	type result = matchResult
	h.buildIndex()
	ix := h.index
	res := make([]result, len(in))
	if workers < 1 {
		workers = 1
	}
	chunk := (len(in) + workers - 1) / workers
	if len(h.decoders) < workers {
		h.decoders = make([]Decoder, workers)
	}
	var wg sync.WaitGroup
	for w := 0; w < workers && w*chunk < len(in); w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(in))
		dec := &h.decoders[w]
		wg.Add(1)
		go func() {
			defer wg.Done()
			var cand []int
			for i := lo; i < hi; i++ {
				r := &res[i]
				full := true
				cand = cand[:0]
				if name := in[i].EventName; name != "" {
					cand = append(append(cand, ix.any...), ix.byName[strings.ToLower(name)]...)
					full = len(cand) > 0
					cand = append(cand, ix.brief...)
				}
				if !full && len(h.Stateful) == 0 && len(ix.brief) == 0 {
					// no rule may match and nothing else reads it
					r.rec = Record{}
					continue
				}
				var err error
				if full {
					// the members the candidate rules read; all of
					// them without an eventName (every rule a candidate)
					var tree *ctree
					if in[i].EventName != "" {
						if t, ok := ix.trees[strings.ToLower(in[i].EventName)]; ok {
							tree = t
						} else if len(ix.any) > 0 {
							tree = ix.anyTree
						}
					}
					r.rec, err = dec.decode(in[i].Raw, tree)
				} else {
					r.rec, err = dec.Brief(in[i].Raw)
				}
				if err != nil || r.rec == nil {
					r.rec = nil
					continue
				}
				r.report = h.Report == nil || h.Report(r.rec)
				if !r.report || len(cand) == 0 && in[i].EventName != "" {
					continue
				}
				match := func(rule *Rule) {
					if rule.Match(r.rec) {
						r.findings = append(r.findings, FindingOf(r.rec, Info{ID: rule.ID, Title: rule.Title, Level: rule.Level, Tags: rule.Tags}))
					}
				}
				if in[i].EventName == "" {
					for _, rule := range h.Rules {
						match(rule)
					}
					continue
				}
				// in rule order, as Run
				slices.Sort(cand)
				for j, k := range cand {
					if j == 0 || k != cand[j-1] {
						match(h.Rules[k])
					}
				}
			}
		}()
	}
	wg.Wait()
	return &Matched{h: h, res: res}
}

// Emit runs the stateful hunts over the batch's records in order and
// calls emit with each finding: for each record the stateful hunts'
// findings, then the rules' in rule order (Run's order). It returns the
// records that were not JSON objects, which were skipped.
func (m *Matched) Emit(emit func(Finding)) (bad int) {
	h, res := m.h, m.res
	for i := range res {
		r := &res[i]
		if r.rec == nil {
			bad++
			continue
		}
		for _, s := range h.Stateful {
			detail, fire := s.Observe(r.rec)
			if fire && r.report {
				f := FindingOf(r.rec, s.Info())
				f.Detail = detail
				emit(f)
			}
		}
		for _, f := range r.findings {
			emit(f)
		}
	}
	return bad
}

// FindingOf is the finding of the hunt in on rec.
func FindingOf(rec Record, in Info) Finding {
	t, _ := time.Parse(time.RFC3339, rec.Str("eventTime"))
	acct := rec.Str("recipientAccountId")
	if acct == "" {
		acct = rec.Str("userIdentity", "accountId")
	}
	tags := in.Tags
	if tags == nil {
		tags = []string{}
	}
	return Finding{RuleID: in.ID, Title: in.Title, Level: in.Level, Tags: tags,
		EventID: rec.Str("eventID"), EventTime: t.UTC(), EventSource: rec.Str("eventSource"), EventName: rec.Str("eventName"),
		Account: acct, Region: rec.Str("awsRegion"), Principal: rec.Principal()}
}

// Str is the string at path in the record, "" when absent or not a
// string.
func (r Record) Str(path ...string) string {
	v, _ := r.lookup(path)
	s, _ := v.(string)
	return s
}

// Principal names who made the call: userIdentity.arn; for a caller
// without one, the AWS service acting (invokedBy), the principalId, or
// the root of the account; "" for a record without userIdentity.
func (r Record) Principal() string {
	if a := r.Str("userIdentity", "arn"); a != "" {
		return a
	}
	if s := r.Str("userIdentity", "invokedBy"); s != "" {
		return s
	}
	if p := r.Str("userIdentity", "principalId"); p != "" {
		return p
	}
	if strings.EqualFold(r.Str("userIdentity", "type"), "Root") {
		if a := r.Str("userIdentity", "accountId"); a != "" {
			return "arn:aws:iam::" + a + ":root"
		}
	}
	return ""
}
