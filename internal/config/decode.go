package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Error is one mistake in a config file.
type Error struct {
	File string
	Line int    // 1-based; 0 when the mistake has no line (an empty file)
	Path string // the setting, e.g. accounts[0].id; "" for the whole file
	Msg  string
}

// Error formats the mistake as file:line: path: reason.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":" + strconv.Itoa(e.Line))
	}
	b.WriteString(": ")
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// ErrorList is every mistake Parse found in a file, in file order, one a
// line. errors.As finds the first *Error in it.
type ErrorList []*Error

// Error returns the mistakes, one a line.
func (l ErrorList) Error() string {
	s := make([]string, len(l))
	for i, e := range l {
		s[i] = e.Error()
	}
	return strings.Join(s, "\n")
}

// Unwrap returns the mistakes, for errors.Is and errors.As.
func (l ErrorList) Unwrap() []error {
	errs := make([]error, len(l))
	for i, e := range l {
		errs[i] = e
	}
	return errs
}

// maxErrors is how many mistakes a file's ErrorList shows.
const maxErrors = 20

const emptyFile = "the file is empty; it needs at least one account with a user and an access key:\n" +
	"accounts:\n" +
	"  - id: \"111111111111\"\n" +
	"    users:\n" +
	"      - name: alice\n" +
	"        access_keys:\n" +
	"          - id: AKIAALICE00000000001\n" +
	"            secret: alice-secret-key"

var (
	accountIDRE = regexp.MustCompile(`^[0-9]{12}$`)
	userNameRE  = regexp.MustCompile(`^[\w+=,.@-]{1,64}$`)
	keyIDRE     = regexp.MustCompile(`^[A-Z0-9]{16,128}$`)
	yamlErrRE   = regexp.MustCompile(`^(?:yaml: )?line (\d+): (.*)$`)
)

// decoder walks the yaml.Node tree of one file, decoding and validating as
// it goes so that every mistake carries the line of the node it is about.
type decoder struct {
	file string
	errs ErrorList

	accountIDs   map[string]int  // account ID -> line, for duplicates
	keyIDs       map[string]int  // access key ID -> line, for duplicates
	keys         int             // access key entries seen, valid or not
	accountsLine int             // line of the accounts value, for the no-key message
	bucketNames  map[string]int  // bucket name -> line, for duplicates
	proxiesGiven map[string]bool // edge trusted_proxies paths the file gave (proxies.go)
}

// decode decodes and validates one file, returning the config or its mistakes.
func decode(name string, data []byte) (*Config, ErrorList) {
	d := &decoder{file: name, accountIDs: map[string]int{}, keyIDs: map[string]int{}}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, ErrorList{{File: name, Msg: emptyFile}}
		}
		return nil, ErrorList{d.syntaxError(err, data)}
	}
	var more yaml.Node
	if err := dec.Decode(&more); err == nil {
		at := &more
		if len(more.Content) > 0 {
			at = more.Content[0]
		}
		d.failf(at, "", "a second YAML document (after ---); a config file holds one")
	} else if !errors.Is(err, io.EOF) {
		d.errs = append(d.errs, d.syntaxError(err, data))
	}
	if len(doc.Content) != 1 || isNull(doc.Content[0]) {
		return nil, append(ErrorList{{File: name, Msg: emptyFile}}, d.errs...)
	}
	c := d.config(doc.Content[0])
	if d.keys == 0 && len(d.errs) == 0 { // with other mistakes it is likely their consequence
		d.errs = append(d.errs, &Error{File: name, Line: d.accountsLine, Path: "accounts",
			Msg: "at least one account with a user and an access key is required"})
	}
	if len(d.errs) == 0 {
		return c, nil
	}
	slices.SortStableFunc(d.errs, func(a, b *Error) int { return cmp.Compare(a.Line, b.Line) })
	if n := len(d.errs); n > maxErrors {
		d.errs = append(d.errs[:maxErrors], &Error{File: name, Msg: fmt.Sprintf("and %d more mistakes", n-maxErrors)})
	}
	return nil, d.errs
}

// config decodes the top level. A new section is a field of Config, a
// method like eventHistory, and a line here.
func (d *decoder) config(n *yaml.Node) *Config {
	c := &Config{EventHistory: EventHistory{RetentionDays: DefaultRetentionDays, RecordBlockKiB: DefaultRecordBlockKiB,
		MemoryLimit: DefaultEventHistoryMemoryLimit, Threads: DefaultEventHistoryThreads},
		Delivery: Delivery{Interval: DefaultDeliveryInterval, DigestInterval: DefaultDigestInterval, DigestKeyRotation: DefaultDigestKeyRotation},
		Trails:   Trails{MaxPerRegion: DefaultMaxTrails}, Insights: DefaultInsights(), Lake: DefaultLake(),
		API: DefaultAPI(), Ingest: DefaultIngest(), Console: DefaultConsole()}
	d.bucketNames = map[string]int{}
	d.mapping(n, "",
		field{"event_history", false, func(v *yaml.Node, path string) { d.eventHistory(v, path, &c.EventHistory) }},
		field{"accounts", false, func(v *yaml.Node, path string) {
			d.accountsLine = v.Line
			c.Accounts = list(d, v, path, d.account)
		}},
		field{"buckets", false, func(v *yaml.Node, path string) { c.Buckets = list(d, v, path, d.bucket) }},
		field{"delivery", false, func(v *yaml.Node, path string) { d.delivery(v, path, &c.Delivery) }},
		field{"trails", false, func(v *yaml.Node, path string) { d.trails(v, path, &c.Trails) }},
		field{"organization", false, func(v *yaml.Node, path string) { c.Organization = d.organization(v, path) }},
		field{"insights", false, func(v *yaml.Node, path string) { d.insights(v, path, &c.Insights) }},
		field{"gateway", false, func(v *yaml.Node, path string) { c.Gateway = d.gateway(v, path) }},
		field{"lake", false, func(v *yaml.Node, path string) { d.lake(v, path, &c.Lake) }},
		field{"api", false, func(v *yaml.Node, path string) { d.api(v, path, &c.API) }},
		field{"ingest", false, func(v *yaml.Node, path string) { d.ingest(v, path, &c.Ingest) }},
		field{"console", false, func(v *yaml.Node, path string) { d.console(v, path, &c.Console) }},
		field{"store", false, func(v *yaml.Node, path string) { d.store(v, path, &c.Store) }},
		field{"cluster", false, func(v *yaml.Node, path string) { d.cluster(v, path, &c.Cluster) }},
		field{"detections", false, func(v *yaml.Node, path string) { c.Detections = d.detections(v, path) }},
		field{"trusted_proxies", false, func(v *yaml.Node, path string) { c.TrustedProxies = d.networks(v, path) }},
	)
	d.inheritProxies(c)
	return c
}

// storeMemoryLimitRE is what event_history.memory_limit takes: the sizes
// the store's SetMemoryLimit accepts, at least 1 MB (duckdb/memory.go).
var storeMemoryLimitRE = regexp.MustCompile(`^[0-9]{1,6}(\.[0-9]{1,3})?\s?(MB|GB|MiB|GiB)$`)

// storeMemoryMB is the size of a storeMemoryLimitRE match in MB.
func storeMemoryMB(s string) float64 {
	i := strings.IndexAny(s, " MG")
	f, err := strconv.ParseFloat(s[:i], 64)
	if err != nil {
		return 0
	}
	if strings.HasSuffix(s, "GB") || strings.HasSuffix(s, "GiB") {
		f *= 1000
	}
	return f
}

func (d *decoder) eventHistory(n *yaml.Node, path string, eh *EventHistory) {
	d.mapping(n, path,
		field{"retention_days", false, func(v *yaml.Node, path string) {
			if days, ok := d.integer(v, path, 0, MaxRetentionDays, "days", "0 keeps events forever"); ok {
				eh.RetentionDays = days
			}
		}},
		field{"record_block_kib", false, func(v *yaml.Node, path string) {
			if kib, ok := d.integer(v, path, 0, MaxRecordBlockKiB, "KiB", "0 stores one frame per record"); ok {
				eh.RecordBlockKiB = kib
			}
		}},
		field{"memory_limit", false, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if !storeMemoryLimitRE.MatchString(s) || storeMemoryMB(s) < MinEventHistoryMemoryMB {
					d.failf(v, path, "want a size of at least %dMB like 512MB or 2GB, got %s", MinEventHistoryMemoryMB, quote(s))
					return
				}
				eh.MemoryLimit = s
			}
		}},
		field{"threads", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 0, 1024, "threads", "0: one per core"); ok {
				eh.Threads = i
			}
		}},
	)
}

func (d *decoder) account(n *yaml.Node, path string) Account {
	var a Account
	names := map[string]int{} // user name -> line, for duplicates in this account
	d.mapping(n, path,
		field{"id", true, func(v *yaml.Node, path string) {
			var ok bool
			a.ID, ok = d.str(v, path)
			switch first, dup := d.accountIDs[a.ID]; {
			case !ok: // reported by str
			case !accountIDRE.MatchString(a.ID):
				d.failf(v, path, "%s is not a 12-digit account ID", quote(a.ID))
			case dup:
				d.failf(v, path, "account %s is already listed on line %d", a.ID, first)
			default:
				d.accountIDs[a.ID] = v.Line
			}
		}},
		field{"users", false, func(v *yaml.Node, path string) {
			a.Users = list(d, v, path, func(n *yaml.Node, path string) User { return d.user(n, path, names) })
		}},
	)
	return a
}

func (d *decoder) user(n *yaml.Node, path string, names map[string]int) User {
	var u User
	d.mapping(n, path,
		field{"name", true, func(v *yaml.Node, path string) {
			var ok bool
			u.Name, ok = d.str(v, path)
			switch first, dup := names[u.Name]; {
			case !ok: // reported by str
			case !userNameRE.MatchString(u.Name):
				d.failf(v, path, "%s is not a valid IAM user name (1-64 of letters, digits and +=,.@_-)", quote(u.Name))
			case dup:
				d.failf(v, path, "user %s is already listed in this account on line %d", u.Name, first)
			default:
				names[u.Name] = v.Line
			}
		}},
		field{"responder", false, func(v *yaml.Node, path string) { u.Responder, _ = d.boolean(v, path) }},
		field{"access_keys", false, func(v *yaml.Node, path string) { u.AccessKeys = list(d, v, path, d.accessKey) }},
	)
	return u
}

func (d *decoder) accessKey(n *yaml.Node, path string) AccessKey {
	var k AccessKey
	d.keys++
	d.mapping(n, path,
		field{"id", true, func(v *yaml.Node, path string) {
			var ok bool
			k.ID, ok = d.str(v, path)
			switch first, dup := d.keyIDs[k.ID]; {
			case !ok: // reported by str
			case !keyIDRE.MatchString(k.ID):
				d.failf(v, path, "%s is not a valid access key ID (16-128 of A-Z and 0-9)", quote(k.ID))
			case dup:
				d.failf(v, path, "access key %s is already listed on line %d", k.ID, first)
			default:
				d.keyIDs[k.ID] = v.Line
			}
		}},
		field{"secret", true, func(v *yaml.Node, path string) {
			// Never quote the secret back: messages end up in logs.
			var ok bool
			if k.Secret, ok = d.str(v, path); ok && k.Secret == "" {
				d.failf(v, path, "the secret is empty")
			}
		}},
	)
	return k
}

// field is one key a mapping may have, and what decodes its value (path
// names the value in messages).
type field struct {
	name     string
	required bool
	decode   func(v *yaml.Node, path string)
}

// mapping decodes a mapping with the given keys: unknown and repeated keys
// are refused and required ones must be there. An empty value (null) is an
// empty mapping.
func (d *decoder) mapping(n *yaml.Node, path string, fields ...field) {
	var seen []string
	unknown := false
	if !isNull(n) {
		if n.Kind != yaml.MappingNode {
			d.wrongKind(n, path, "a mapping (key: value lines)")
			return
		}
		lines := map[string]int{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			j := slices.IndexFunc(fields, func(f field) bool { return k.Kind == yaml.ScalarNode && f.name == k.Value })
			kpath := join(path, k.Value)
			if k.Kind != yaml.ScalarNode {
				kpath = path
			}
			if j < 0 {
				d.failf(k, kpath, "%s", unknownKey(k, path, fields))
				unknown = true
				continue
			}
			if first, dup := lines[k.Value]; dup {
				d.failf(k, kpath, "set twice (first on line %d)", first)
				continue
			}
			lines[k.Value] = k.Line
			seen = append(seen, k.Value)
			fields[j].decode(v, kpath)
		}
	}
	for _, f := range fields {
		// After an unknown key, a missing one is most likely its misspelling.
		if f.required && !unknown && !slices.Contains(seen, f.name) {
			d.failf(n, join(path, f.name), "required, but missing")
		}
	}
}

// list decodes a list, each item with decode. An empty value (null) is an
// empty list.
func list[T any](d *decoder, n *yaml.Node, path string, decode func(n *yaml.Node, path string) T) []T {
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.wrongKind(n, path, "a list (\"- \" lines)")
		return nil
	}
	items := make([]T, 0, len(n.Content))
	for i, v := range n.Content {
		items = append(items, decode(v, fmt.Sprintf("%s[%d]", path, i)))
	}
	return items
}

// str decodes a string: any scalar, as written (so an unquoted account ID
// keeps its digits). An empty value (null) is "". It reports a value of
// another kind and returns false.
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	if n.Kind != yaml.ScalarNode {
		d.wrongKind(n, path, "a string")
		return "", false
	}
	return n.Value, true
}

// integer decodes a YAML integer in [lo, hi]; unit and note explain it.
func (d *decoder) integer(n *yaml.Node, path string, lo, hi int, unit, note string) (int, bool) {
	want := fmt.Sprintf("a whole number of %s from %d to %d (%s)", unit, lo, hi, note)
	switch {
	case n.Kind != yaml.ScalarNode || isNull(n):
		d.wrongKind(n, path, want)
	case n.ShortTag() == "!!str" && n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0:
		d.failf(n, path, "want %s, got the quoted string %s: write the number without quotes", want, quote(n.Value))
	default:
		var v int
		if n.ShortTag() == "!!int" && n.Decode(&v) == nil && v >= lo && v <= hi {
			return v, true
		}
		got := quote(n.Value)
		if t := n.ShortTag(); (t == "!!int" || t == "!!float") && len(n.Value) <= 64 {
			got = n.Value
		}
		d.failf(n, path, "want %s, got %s", want, got)
	}
	return 0, false
}

func (d *decoder) wrongKind(n *yaml.Node, path, want string) {
	switch {
	case n.Kind == yaml.AliasNode:
		d.failf(n, path, "aliases (*%s) are not supported: write the value out", n.Value)
	case isNull(n):
		d.failf(n, path, "want %s, got nothing", want)
	case n.Kind == yaml.MappingNode:
		d.failf(n, path, "want %s, got a mapping", want)
	case n.Kind == yaml.SequenceNode:
		d.failf(n, path, "want %s, got a list", want)
	default:
		d.failf(n, path, "want %s, got %s", want, quote(n.Value))
	}
}

func (d *decoder) failf(n *yaml.Node, path, format string, args ...any) {
	d.errs = append(d.errs, &Error{File: d.file, Line: n.Line, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// syntaxError turns a yaml.v3 parse error into an Error with its line.
// A tab in the indentation gets a hint.
func (d *decoder) syntaxError(err error, data []byte) *Error {
	e := &Error{File: d.file, Msg: "not valid YAML: " + strings.TrimPrefix(err.Error(), "yaml: ")}
	if m := yamlErrRE.FindStringSubmatch(err.Error()); m != nil {
		if line, convErr := strconv.Atoi(m[1]); convErr == nil {
			e.Line, e.Msg = line, "not valid YAML: "+m[2]
			lines := bytes.Split(data, []byte("\n"))
			if line >= 1 && line <= len(lines) && bytes.Contains(lines[line-1], []byte("\t")) {
				e.Msg += " (a tab? YAML indents with spaces)"
			}
		}
	}
	return e
}

// unknownKey explains an unknown key of the mapping at path, suggesting the
// known key it most likely meant.
func unknownKey(k *yaml.Node, path string, fields []field) string {
	if k.Kind != yaml.ScalarNode {
		return "a key must be a plain name"
	}
	if k.Value == "<<" {
		return "merge keys (<<) are not supported: write the settings out"
	}
	names := make([]string, len(fields))
	best, bestDist := "", 3
	for i, f := range fields {
		names[i] = f.name
		if dist := distance(fold(k.Value), fold(f.name)); dist < bestDist && dist <= len(f.name)/2 {
			best, bestDist = f.name, dist
		}
	}
	if best != "" {
		return fmt.Sprintf("unknown setting; did you mean %s?", best)
	}
	where := path
	if where == "" {
		where = "the top level"
	}
	return fmt.Sprintf("unknown setting; %s has: %s", where, strings.Join(names, ", "))
}

// fold makes AccessKeys, access-keys and access_keys alike.
func fold(s string) string {
	return strings.NewReplacer("_", "", "-", "", " ", "").Replace(strings.ToLower(s))
}

// distance is the Levenshtein distance of two short strings (bytes).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return max(len(a), len(b)) // too long to be a typo; don't spend time
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// quote quotes a value for a message, cut short if it is long.
func quote(s string) string {
	if len(s) > 64 {
		return strconv.Quote(s[:64]) + "..."
	}
	return strconv.Quote(s)
}
