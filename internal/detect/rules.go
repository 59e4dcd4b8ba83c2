package detect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/cairn-audit/cairn/internal/audit"
	"github.com/cairn-audit/cairn/internal/sigma"
)

// ruleSet is the rules in force, replaced whole on a reload.
type ruleSet struct {
	rules  []*sigma.Rule
	byFile map[string]*sigma.Rule
	// any are the rules (indexes into rules) that may match any event
	// name; byName those bounded by the record's eventName (lower-cased),
	// each list in rule order (sigma.Rule.EventNames).
	any    []int
	byName map[string][]int
	// What to decode of a record for its candidates (with what stateful
	// hunts and findings read): allFields for every rule, anyFields for
	// the unbounded ones, nameFields for those and the rules of one event
	// name.
	allFields, anyFields sigma.Fields
	nameFields           map[string]sigma.Fields
	// huntFields are what stateful hunts and findings read.
	huntFields sigma.Fields
	// sig is the folders' signature (files, sizes, mtimes) when loaded.
	sig string
}

// builtinPrefix names the built-in rules' files in messages.
const builtinPrefix = "builtin:"

// loadRules loads the rules of the folders and the built-in ones and puts
// them in force. A file refused now whose previous version loaded keeps
// that version (an edit saved half-way, a folder unmounted), so a bad
// reload never drops a good rule; every refusal is logged as
// file:line: reason, and none stops the others or the server.
func (d *Detector) loadRules(cause string) {
	prev := d.rules.Load()
	sig := d.signature()
	var rules []*sigma.Rule
	var errs []error
	for _, dir := range d.cfg.Folders {
		r, e := sigma.Load(d.cfg.Sigma, dir)
		rules = append(rules, r...)
		errs = append(errs, e...)
	}
	if d.cfg.Builtin != nil {
		r, e := sigma.LoadFS(d.cfg.Sigma, d.cfg.Builtin, builtinPrefix)
		rules = append(rules, r...)
		errs = append(errs, e...)
	}
	next := &ruleSet{byFile: map[string]*sigma.Rule{}, sig: sig}
	for _, r := range rules {
		next.byFile[r.File] = r
	}
	kept := 0
	for _, err := range errs {
		d.log.Warn("detect: rule refused", "reason", err.Error())
		var le *sigma.LoadError
		if !errors.As(err, &le) {
			continue
		}
		// The previous rules of the refused file, or of every file under
		// a refused folder, stay in force.
		for f, r := range prev.byFile {
			if (f == le.File || strings.HasPrefix(f, le.File+string(filepath.Separator))) && next.byFile[f] == nil {
				next.byFile[f] = r
				kept++
				d.log.Warn("detect: keeping the rule's previous version", "file", f, "rule_id", r.ID)
			}
		}
	}
	files := make([]string, 0, len(next.byFile))
	for f := range next.byFile {
		files = append(files, f)
	}
	sort.Strings(files)
	ids := map[string]string{}
	for _, f := range files {
		r := next.byFile[f]
		// Findings are one per rule ID and event: a second file with the
		// same ID adds none of its own.
		if other, dup := ids[RuleKey(r)]; dup {
			d.log.Warn("detect: two rules have the same id; their findings are merged", "rule_id", RuleKey(r), "file", f, "other", other)
		}
		ids[RuleKey(r)] = f
		next.rules = append(next.rules, r)
	}
	next.index()
	d.rules.Store(next)
	d.m.rules.Set(float64(len(next.rules)))
	d.m.refused.Set(float64(len(errs)))
	d.m.reloads.WithLabelValues(cause).Inc()
	d.log.Info("detect: rules loaded", "cause", cause, "rules", len(next.rules), "refused", len(errs), "kept_previous", kept)
}

// signature summarises the rule folders' files (names, sizes, mtimes): a
// change of any means a reload. Built-in rules never change.
func (d *Detector) signature() string {
	h := sha256.New()
	for _, dir := range d.cfg.Folders {
		fmt.Fprintf(h, "%q\n", dir)
		_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				fmt.Fprintf(h, "error %q\n", p)
				return nil
			}
			if e.IsDir() || !(strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
				return nil
			}
			fi, err := os.Stat(p) // follows a symlinked file, as Load does
			if err != nil {
				fmt.Fprintf(h, "error %q\n", p)
				return nil
			}
			fmt.Fprintf(h, "%q %d %d\n", p, fi.Size(), fi.ModTime().UnixNano())
			return nil
		})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// fieldsOf returns what to decode of a record for the rules listed (with
// what stateful hunts and findings read).
func fieldsOf(rules []*sigma.Rule, idx ...[]int) sigma.Fields {
	var list []*sigma.Rule
	for _, l := range idx {
		for _, i := range l {
			list = append(list, rules[i])
		}
	}
	return sigma.FieldsFor(list)
}

// index builds any, byName and the field sets.
func (rs *ruleSet) index() {
	rs.any, rs.byName = nil, map[string][]int{}
	all := make([]int, len(rs.rules))
	for i, r := range rs.rules {
		all[i] = i
		names, ok := r.EventNames()
		if !ok {
			rs.any = append(rs.any, i)
			continue
		}
		for _, n := range names {
			rs.byName[n] = append(rs.byName[n], i)
		}
	}
	rs.huntFields = sigma.FieldsFor(nil)
	rs.allFields = fieldsOf(rs.rules, all)
	rs.anyFields = fieldsOf(rs.rules, rs.any)
	rs.nameFields = map[string]sigma.Fields{}
	for n, idx := range rs.byName {
		rs.nameFields[n] = fieldsOf(rs.rules, rs.any, idx)
	}
}

// candidates returns the rules that may match r, in rule order. The
// record's eventName bounds them (audit.Record.EventName is the top-level
// eventName, a string, when the record has one); a record whose EventName
// may not be its top-level eventName (Insights details), or is not plain
// ASCII (case folding beyond ToLower), is matched against every rule.
func (rs *ruleSet) candidates(r *audit.Record, buf []int) ([]int, sigma.Fields) {
	buf = buf[:0]
	if r.EventName == "" || r.Category == audit.CategoryInsight || !ascii(r.EventName) || bytes.Contains(r.Raw, []byte(`"insightDetails"`)) {
		for i := range rs.rules {
			buf = append(buf, i)
		}
		return buf, rs.allFields
	}
	name := strings.ToLower(r.EventName)
	named := rs.byName[name]
	if len(named) == 0 {
		return append(buf, rs.any...), rs.anyFields
	}
	fields := rs.nameFields[name]
	if len(rs.any) == 0 {
		return append(buf, named...), fields
	}
	// merge two sorted lists
	a, b := rs.any, named
	for len(a) > 0 && len(b) > 0 {
		if a[0] < b[0] {
			buf, a = append(buf, a[0]), a[1:]
		} else {
			buf, b = append(buf, b[0]), b[1:]
		}
	}
	buf = append(buf, a...)
	return append(buf, b...), fields
}

func ascii(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// match appends the findings of one record to found: the rules', then the
// stateful hunts' (which observe every record). The record is decoded only
// when a rule may match it or a stateful hunt observes it, and then only
// in what they read, with dec (nil: a Decoder sharing nothing).
func (rs *ruleSet) match(r *audit.Record, hunts []sigma.Stateful, now time.Time, found []Finding, dec *sigma.Decoder) []Finding {
	var buf [64]int
	cand, fields := rs.candidates(r, buf[:0])
	if len(cand) == 0 {
		if len(hunts) == 0 {
			return found
		}
		fields = rs.huntFields
	}
	rec, err := dec.Decode(r.Raw, fields)
	if err != nil || rec == nil {
		return found // stored records are JSON objects; nothing to match otherwise
	}
	for _, i := range cand {
		rule := rs.rules[i]
		if !rule.Match(rec) {
			continue
		}
		found = append(found, newFinding(sigma.Info{ID: RuleKey(rule), Title: rule.Title, Level: rule.Level, Tags: rule.Tags}, "", r, rec, now))
	}
	for _, h := range hunts {
		if detail, fire := h.Observe(rec); fire {
			found = append(found, newFinding(h.Info(), detail, r, rec, now))
		}
	}
	return found
}

// RuleKey is the rule's identity in findings: its id, else its title.
func RuleKey(r *sigma.Rule) string {
	if r.ID != "" {
		return r.ID
	}
	return "title:" + r.Title
}

// newFinding is the finding of the rule or hunt in (in.ID its RuleKey) on
// the stored record r, decoded as rec.
func newFinding(in sigma.Info, detail string, r *audit.Record, rec sigma.Record, now time.Time) Finding {
	key := in.ID
	sum := sha256.Sum256([]byte(key + "\x00" + r.Account + "\x00" + r.EventID))
	f := sigma.FindingOf(rec, in)
	f.Detail = detail
	// The store's extraction of the record (what Event History shows).
	f.EventID, f.EventTime, f.EventName, f.EventSource, f.Account, f.Region = r.EventID, r.Time, r.EventName, r.EventSource, r.Account, r.Region
	if f.Principal == "" {
		f.Principal = r.Username
	}
	return Finding{ID: hex.EncodeToString(sum[:16]), Finding: f, DetectedAt: now}
}
