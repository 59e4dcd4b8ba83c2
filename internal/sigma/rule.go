// Package sigma runs Sigma detection rules (https://sigmahq.io, the Sigma
// specification) over CloudTrail records. A rule is parsed and compiled once
// (Parse, Load); Rule.Match then evaluates a decoded record without
// allocating for the common forms (equality, prefix, suffix, contains).
// Rules cairn cannot run faithfully (another logsource, aggregations,
// correlations, modifiers it does not know) are refused at load with the
// file, the line and the reason, so that a loaded rule never silently
// matches less than its author meant.
package sigma

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// Config bounds loading. Its zero value works.
type Config struct {
	// MaxRuleBytes refuses rule files larger than this (default 1 MiB).
	MaxRuleBytes int64
	// MaxRules stops loading a folder after this many rules (default 10,000).
	MaxRules int
}

func (c Config) maxRuleBytes() int64 {
	if c.MaxRuleBytes <= 0 {
		return 1 << 20
	}
	return c.MaxRuleBytes
}

func (c Config) maxRules() int {
	if c.MaxRules <= 0 {
		return 10000
	}
	return c.MaxRules
}

// Rule is one compiled Sigma rule.
type Rule struct {
	Title          string
	ID             string
	Status         string
	Level          string
	Description    string
	Tags           []string
	FalsePositives []string
	File           string // where it was loaded from, for messages

	sels []selection
	cond node
}

// LoadError is why one rule file was refused: File, the 1-based Line the
// reason points at (0 when none) and the Reason.
type LoadError struct {
	File   string
	Line   int
	Reason string
}

func (e *LoadError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Reason)
	}
	return fmt.Sprintf("%s: %s", e.File, e.Reason)
}

func refuse(file string, n *yaml.Node, format string, args ...any) *LoadError {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &LoadError{File: file, Line: line, Reason: fmt.Sprintf(format, args...)}
}

// Load reads every .yml and .yaml file under path (a folder, walked
// recursively, or one file). It returns the rules that compiled, sorted by
// file, and one *LoadError per file refused; a refused file never stops the
// others. The error list is nil when every file loaded.
func Load(cfg Config, path string) ([]*Rule, []error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, []error{&LoadError{File: path, Reason: err.Error()}}
	}
	if !st.IsDir() {
		r, err := loadFile(cfg, os.DirFS(filepath.Dir(path)), filepath.Base(path), path)
		if err != nil {
			return nil, []error{err}
		}
		return []*Rule{r}, nil
	}
	return loadFS(cfg, os.DirFS(path), func(p string) string { return filepath.Join(path, filepath.FromSlash(p)) })
}

// LoadFS is Load over a file system (the built-in hunts are embedded in the
// binary): every .yml and .yaml file under fsys's root, walked recursively.
// Messages name files by their path in fsys, prefixed with prefix.
func LoadFS(cfg Config, fsys fs.FS, prefix string) ([]*Rule, []error) {
	return loadFS(cfg, fsys, func(p string) string { return prefix + p })
}

func loadFS(cfg Config, fsys fs.FS, display func(string) string) ([]*Rule, []error) {
	var files []string
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && (strings.HasSuffix(p, ".yml") || strings.HasSuffix(p, ".yaml")) {
			files = append(files, p)
		}
		return nil
	})
	if err != nil {
		return nil, []error{&LoadError{File: display("."), Reason: err.Error()}}
	}
	sort.Strings(files)
	var rules []*Rule
	var errs []error
	for _, f := range files {
		if len(rules) >= cfg.maxRules() {
			errs = append(errs, &LoadError{File: display(f), Reason: fmt.Sprintf("not loaded: more than %d rules", cfg.maxRules())})
			continue
		}
		r, err := loadFile(cfg, fsys, f, display(f))
		if err != nil {
			errs = append(errs, err)
			continue
		}
		rules = append(rules, r)
	}
	return rules, errs
}

func loadFile(cfg Config, fsys fs.FS, name, display string) (*Rule, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return nil, &LoadError{File: display, Reason: err.Error()}
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, cfg.maxRuleBytes()+1))
	if err != nil {
		return nil, &LoadError{File: display, Reason: err.Error()}
	}
	if int64(len(data)) > cfg.maxRuleBytes() {
		return nil, &LoadError{File: display, Reason: fmt.Sprintf("rule file larger than %d bytes", cfg.maxRuleBytes())}
	}
	r, err := Parse(display, data)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// Parse compiles one rule file's text; name is used in messages only. The
// error, if any, is a *LoadError.
func Parse(name string, data []byte) (*Rule, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		return nil, &LoadError{File: name, Line: yamlLine(err), Reason: "malformed YAML: " + err.Error()}
	}
	var next yaml.Node
	if err := dec.Decode(&next); err == nil {
		return nil, refuse(name, &next, "more than one YAML document (rule collections and correlation bundles are not supported)")
	}
	if len(doc.Content) != 1 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, refuse(name, &doc, "a rule is a YAML mapping")
	}
	top := doc.Content[0]
	r := &Rule{File: name}
	var detection, logsource *yaml.Node
	for i := 0; i+1 < len(top.Content); i += 2 {
		k, v := top.Content[i], top.Content[i+1]
		var err error
		switch k.Value {
		case "title":
			err = scalar(v, &r.Title)
		case "id":
			err = scalar(v, &r.ID)
		case "status":
			err = scalar(v, &r.Status)
		case "level":
			err = scalar(v, &r.Level)
		case "description":
			err = scalar(v, &r.Description)
		case "tags":
			err = v.Decode(&r.Tags)
		case "falsepositives":
			if v.Kind == yaml.ScalarNode {
				r.FalsePositives = []string{v.Value}
			} else {
				err = v.Decode(&r.FalsePositives)
			}
		case "logsource":
			logsource = v
		case "detection":
			detection = v
		case "correlation":
			return nil, refuse(name, k, "correlation rules are not supported")
		}
		if err != nil {
			return nil, refuse(name, v, "%s: %v", k.Value, err)
		}
	}
	if r.Title == "" {
		return nil, refuse(name, top, "the rule has no title")
	}
	if err := checkLogsource(name, top, logsource); err != nil {
		return nil, err
	}
	if detection == nil {
		return nil, refuse(name, top, "the rule has no detection")
	}
	if err := r.compileDetection(name, detection); err != nil {
		return nil, err
	}
	return r, nil
}

func yamlLine(err error) int {
	var line int
	if _, e := fmt.Sscanf(err.Error(), "yaml: line %d:", &line); e == nil {
		return line
	}
	return 0
}

func scalar(n *yaml.Node, dst *string) error {
	if n.Kind != yaml.ScalarNode {
		return errors.New("not a scalar")
	}
	*dst = n.Value
	return nil
}

// checkLogsource accepts product aws with service cloudtrail, the only log
// cairn holds; anything else would match records it was never written for.
func checkLogsource(name string, top, ls *yaml.Node) error {
	if ls == nil {
		return refuse(name, top, "the rule has no logsource (cairn runs product: aws, service: cloudtrail)")
	}
	if ls.Kind != yaml.MappingNode {
		return refuse(name, ls, "logsource is not a mapping")
	}
	var product, service string
	at := ls
	for i := 0; i+1 < len(ls.Content); i += 2 {
		k, v := ls.Content[i], ls.Content[i+1]
		switch k.Value {
		case "product":
			product = v.Value
			if product != "aws" {
				at = v
			}
		case "service":
			service = v.Value
			if service != "cloudtrail" && at == ls {
				at = v
			}
		case "category":
			return refuse(name, k, "logsource category %q: cairn runs product: aws, service: cloudtrail only", v.Value)
		}
	}
	if product != "aws" || service != "cloudtrail" {
		return refuse(name, at, "logsource product %q service %q: cairn runs product: aws, service: cloudtrail only", product, service)
	}
	return nil
}

func (r *Rule) compileDetection(name string, det *yaml.Node) error {
	if det.Kind != yaml.MappingNode {
		return refuse(name, det, "detection is not a mapping")
	}
	var condNode *yaml.Node
	idx := map[string]int{}
	var names []string
	for i := 0; i+1 < len(det.Content); i += 2 {
		k, v := det.Content[i], det.Content[i+1]
		switch k.Value {
		case "condition":
			condNode = v
			continue
		case "timeframe":
			return refuse(name, k, "timeframe (an aggregation over time) is not supported")
		}
		s, err := compileSelection(name, v)
		if err != nil {
			return err
		}
		s.name = k.Value
		idx[k.Value] = len(r.sels)
		names = append(names, k.Value)
		r.sels = append(r.sels, s)
	}
	if condNode == nil {
		return refuse(name, det, "detection has no condition")
	}
	var conds []string
	switch condNode.Kind {
	case yaml.ScalarNode:
		conds = []string{condNode.Value}
	case yaml.SequenceNode:
		for _, c := range condNode.Content {
			if c.Kind != yaml.ScalarNode {
				return refuse(name, c, "condition is not a string")
			}
			conds = append(conds, c.Value)
		}
	default:
		return refuse(name, condNode, "condition is not a string or list of strings")
	}
	if len(conds) == 0 {
		return refuse(name, condNode, "empty condition")
	}
	var alts []node
	for _, c := range conds {
		n, err := parseCondition(c, names, idx)
		if err != nil {
			return refuse(name, condNode, "condition %q: %v", c, err)
		}
		alts = append(alts, n)
	}
	if len(alts) == 1 {
		r.cond = alts[0]
	} else {
		r.cond = orNode(alts)
	}
	return nil
}

// Match reports whether rec satisfies the rule's condition.
func (r *Rule) Match(rec Record) bool {
	return r.cond.eval(r.sels, rec)
}
