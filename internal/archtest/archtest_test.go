// Package archtest keeps cairn's layering visible: edges on top, features in
// the middle, the domain and technology adapters at the bottom
// (docs/design.md, "Shape"). Its test reads every non-test Go file's imports
// and fails when a package imports across the layers, or when an exemption
// below no longer matches anything (so the list only shrinks).
package archtest

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/cairn-audit/cairn/"

// edges serve the wire (and everything that talks to a running cairn);
// wire packages speak AWS's protocols and are for edges only.
var (
	edges    = []string{"cmd/cairn", "internal/apiserver", "internal/gateway", "internal/client", "internal/console"}
	wire     = []string{"internal/awsjson"}
	features = []string{"internal/trail", "internal/lake", "internal/insights", "internal/ingest",
		"internal/importer", "internal/retention", "internal/detect"}
)

// allowed are imports of one feature by another that the design keeps:
// Lake reads CloudTrail log files with the importer's readers, and its
// DuckDB engine acknowledges small inserts (PutAuditEvents) from the
// ingest pipeline's journal.
var allowed = map[string]bool{
	"internal/lake -> internal/importer":              true,
	"internal/lake/duckdb -> internal/ingest/journal": true,
}

// duckdbAdapters are the technology adapters of DuckDB: the only packages
// that import its driver (a feature takes an adapter through the port it
// declares, and cmd/cairn wires it).
var duckdbAdapters = []string{"internal/store/duckdb", "internal/lake/duckdb"}

// pgxUsers import pgx, the PostgreSQL driver: the store adapter, and
// pgtest, the tests' helper that creates their databases (linked by no
// binary).
var pgxUsers = []string{"internal/store/postgres", "internal/lake/postgres", "internal/pgtest"}

// exemptions are violations tolerated until the change that ends them; a
// listed exemption that no longer occurs fails the test. Issue 12 ended the
// eight it started with; keep it empty.
var exemptions = map[string]bool{}

// under reports whether pkg is one of roots or inside one.
func under(pkg string, roots []string) (string, bool) {
	for _, r := range roots {
		if pkg == r || strings.HasPrefix(pkg, r+"/") {
			return r, true
		}
	}
	return "", false
}

// rule returns why importing imp from pkg breaks the layering, or "".
func rule(pkg, imp string) string {
	if !strings.HasPrefix(imp, module) {
		if strings.HasPrefix(imp, "github.com/duckdb/") && !slices.Contains(duckdbAdapters, pkg) {
			return "only the DuckDB adapters (" + strings.Join(duckdbAdapters, ", ") + ") import the DuckDB driver"
		}
		if strings.HasPrefix(imp, "github.com/jackc/") && !slices.Contains(pgxUsers, pkg) {
			return "only the PostgreSQL adapter (internal/store/postgres) and its test helper import pgx"
		}
		if pkg == "internal/audit" && !strings.HasPrefix(imp, "github.com/go-json-experiment/json") && strings.Contains(strings.SplitN(imp, "/", 2)[0], ".") {
			return "the domain (audit) imports only the standard library and go-json-experiment"
		}
		if pkg == "internal/audit" && (imp == "net" || strings.HasPrefix(imp, "net/") || imp == "database/sql" || imp == "os/exec") {
			return "the domain (audit) reaches no network, database or process"
		}
		return ""
	}
	imp = strings.TrimPrefix(imp, module)
	if pkg == "internal/audit" {
		return "the domain (audit) imports no other package of cairn"
	}
	if pkg == "cmd/cairn" || strings.HasPrefix(pkg, "cmd/") {
		return ""
	}
	if imp == "internal/config" || strings.HasPrefix(imp, "internal/config/") {
		return "only cmd/cairn reads the config; components take their own Config"
	}
	_, pkgEdge := under(pkg, edges)
	if _, ok := under(imp, edges); ok && !pkgEdge {
		return "no feature or lower package imports an edge"
	}
	if _, ok := under(imp, wire); ok && !pkgEdge {
		if _, self := under(pkg, wire); !self {
			return "AWS wire packages are for edges only"
		}
	}
	pf, pkgFeature := under(pkg, features)
	imf, impFeature := under(imp, features)
	if impFeature && pkgFeature && pf != imf {
		return "a feature imports no other feature; the consumer declares the interface it needs and cmd/cairn connects them"
	}
	if impFeature && !pkgFeature && !pkgEdge {
		return "lower packages import no feature"
	}
	return ""
}

func TestLayering(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	imports := map[string]map[string]bool{} // package -> imports (module-relative package paths)
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (n == "testdata" || strings.HasPrefix(n, ".") || n == "bench" || n == "scripts" || n == "docs") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(path))
		pkg := filepath.ToSlash(rel)
		if imports[pkg] == nil {
			imports[pkg] = map[string]bool{}
		}
		for _, s := range f.Imports {
			p, _ := strconv.Unquote(s.Path.Value)
			imports[pkg][p] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(imports["internal/audit"]) == 0 || len(imports["cmd/cairn"]) == 0 {
		t.Fatalf("read the imports of %d packages, without internal/audit or cmd/cairn: wrong root %s", len(imports), root)
	}
	used := map[string]bool{}
	var pkgs []string
	for p := range imports {
		pkgs = append(pkgs, p)
	}
	slices.Sort(pkgs)
	for _, pkg := range pkgs {
		var imps []string
		for i := range imports[pkg] {
			imps = append(imps, i)
		}
		slices.Sort(imps)
		for _, imp := range imps {
			why := rule(pkg, imp)
			if why == "" {
				continue
			}
			edge := pkg + " -> " + strings.TrimPrefix(imp, module)
			if allowed[edge] {
				continue
			}
			if exemptions[edge] {
				used[edge] = true
				continue
			}
			t.Errorf("%s: %s", edge, why)
		}
	}
	for e := range exemptions {
		if !used[e] {
			t.Errorf("exemption %q no longer occurs: delete it from archtest's list", e)
		}
	}
}

// TestRules checks the rule on imports it must refuse and accept, so a
// mistake in the rule cannot pass the whole tree silently.
func TestRules(t *testing.T) {
	for _, c := range []struct {
		pkg, imp string
		bad      bool
	}{
		{"internal/lake", module + "internal/apiserver", true},
		{"internal/trail", module + "internal/lake", true},
		{"internal/lake", module + "internal/trail/chain", true},
		{"internal/audit", module + "internal/store/duckdb", true},
		{"internal/audit/audittest", module + "internal/audit", false},
		{"internal/audit", "github.com/duckdb/duckdb-go/v2", true},
		{"internal/audit", "net/http", true},
		{"internal/audit", "github.com/go-json-experiment/json/jsontext", false},
		{"internal/store/duckdb", module + "internal/lake", true},
		{"internal/gateway", module + "internal/config", true},
		{"internal/apiserver", module + "internal/lake", false},
		{"internal/apiserver", module + "internal/awsjson", false},
		{"internal/trail", module + "internal/awsjson", true},
		{"internal/ingest", module + "internal/ingest/journal", false},
		{"internal/lake", module + "internal/audit", false},
		{"cmd/cairn", module + "internal/config", false},
		{"internal/lake", "github.com/duckdb/duckdb-go/v2", true},
		{"internal/apiserver", "github.com/duckdb/duckdb-go/v2", true},
		{"cmd/cairn", "github.com/duckdb/duckdb-go/v2", true},
		{"internal/lake/duckdb", "github.com/duckdb/duckdb-go/v2", false},
		{"internal/store/duckdb", "github.com/duckdb/duckdb-go/v2", false},
		{"internal/lake", module + "internal/lake/engine", false},
		{"internal/store/postgres", "github.com/jackc/pgx/v5", false},
		{"internal/store/postgres", "github.com/jackc/pgx/v5/pgxpool", false},
		{"internal/pgtest", "github.com/jackc/pgx/v5", false},
		{"cmd/cairn", "github.com/jackc/pgx/v5", true},
		{"internal/lake", "github.com/jackc/pgx/v5/pgxpool", true},
		{"internal/store/duckdb", "github.com/jackc/pgx/v5", true},
		// sigma is a library below the features: live detection uses it.
		{"internal/detect", module + "internal/sigma", false},
		{"internal/sigma", module + "internal/detect", true},
		{"internal/detect", module + "internal/lake", true},
	} {
		if got := rule(c.pkg, c.imp) != ""; got != c.bad {
			t.Errorf("rule(%s, %s) refuses = %v; want %v", c.pkg, c.imp, got, c.bad)
		}
	}
	if _, err := os.Stat("../../go.mod"); err != nil {
		t.Fatalf("archtest must sit two levels below the module root: %v", err)
	}
}

// TestTrailLinksNoS3SDK: the trail feature declares the bucket port it
// consumes (trail.Bucket) and takes the errors from internal/bucket/objects,
// so it links no AWS SDK; the S3 adapter (internal/bucket) does.
func TestTrailLinksNoS3SDK(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", module+"internal/trail").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	deps := strings.Fields(string(out))
	if !slices.Contains(deps, module+"internal/bucket/objects") {
		t.Fatalf("go list -deps internal/trail lists no internal/bucket/objects: wrong package? %d deps", len(deps))
	}
	for _, d := range deps {
		if strings.HasPrefix(d, "github.com/aws/") {
			t.Errorf("internal/trail links %s: declare the port in trail, keep SDKs in adapters", d)
		}
	}
}

// TestEdgesAndLakeLinkNoDuckDB: Lake reaches its engine through the
// engine.Engine port, so neither Lake nor the API edge that serves it links
// the DuckDB driver; cmd/cairn injects the adapter (internal/lake/duckdb).
func TestEdgesAndLakeLinkNoDuckDB(t *testing.T) {
	for _, pkg := range []string{"internal/lake", "internal/apiserver"} {
		out, err := exec.Command("go", "list", "-deps", module+pkg).Output()
		if err != nil {
			t.Fatalf("go list -deps %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		if !slices.Contains(deps, module+"internal/audit") {
			t.Fatalf("go list -deps %s lists no internal/audit: wrong package? %d deps", pkg, len(deps))
		}
		for _, d := range deps {
			if strings.Contains(d, "duckdb") {
				t.Errorf("%s links %s: Lake's engine is injected by cmd/cairn", pkg, d)
			}
		}
	}
}
