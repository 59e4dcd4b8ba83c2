package sigma

import (
	"strings"
	"sync"
	"time"
)

// Finding is one hunt's match on one record.
type Finding struct {
	RuleID      string    `json:"ruleId"`
	Title       string    `json:"title"`
	Level       string    `json:"level"`
	Tags        []string  `json:"tags,omitempty"`
	EventID     string    `json:"eventID"`
	EventTime   time.Time `json:"eventTime"`
	EventSource string    `json:"eventSource"`
	EventName   string    `json:"eventName"`
	Account     string    `json:"recipientAccountId"`
	Region      string    `json:"awsRegion"`
	Principal   string    `json:"principal,omitempty"`
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
// state. A Stateful is used by one goroutine at a time.
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

// RunBatch decodes raw records and runs the hunt over them in order, as
// Run does for each: decoding and the (stateless) rules run on workers
// goroutines, the stateful hunts on the caller's, in the batch's order.
// Records that are not JSON objects are skipped and counted in bad.
func (h *Hunt) RunBatch(raws [][]byte, workers int, emit func(Finding)) (bad int) {
	type result struct {
		rec      Record
		report   bool
		findings []Finding
	}
	res := make([]result, len(raws))
	if workers < 1 {
		workers = 1
	}
	chunk := (len(raws) + workers - 1) / workers
	var wg sync.WaitGroup
	for w := 0; w < workers && w*chunk < len(raws); w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(raws))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				rec, err := DecodeRecord(raws[i])
				if err != nil {
					continue
				}
				r := &res[i]
				r.rec = rec
				r.report = h.Report == nil || h.Report(rec)
				if !r.report {
					continue
				}
				for _, rule := range h.Rules {
					if rule.Match(rec) {
						r.findings = append(r.findings, FindingOf(rec, Info{ID: rule.ID, Title: rule.Title, Level: rule.Level, Tags: rule.Tags}))
					}
				}
			}
		}()
	}
	wg.Wait()
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
	return Finding{RuleID: in.ID, Title: in.Title, Level: in.Level, Tags: in.Tags,
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
