package archtest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"
)

// TestErrorCodesAreConstants keeps error codes typed: a feature raises an
// audit.Error only with one of audit's Code constants, never a string
// literal (which compiles, as an untyped constant, and would let a code
// drift from the one table of codes in internal/audit/errors.go). It checks
// audit.Errorf's first argument, audit.Error{Code: ...} and comparisons of
// a code with a literal, in every non-test file.
func TestErrorCodesAreConstants(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	err = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); path != root && (n == "testdata" || strings.HasPrefix(n, ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, 0)
		if err != nil {
			return err
		}
		inAudit := f.Name.Name == "audit"
		isLit := func(e ast.Expr) bool {
			l, ok := e.(*ast.BasicLit)
			return ok && l.Kind == token.STRING
		}
		// auditName reports whether e names audit's X: audit.X outside the
		// package, X inside it.
		auditName := func(e ast.Expr, x string) bool {
			if s, ok := e.(*ast.SelectorExpr); ok {
				id, ok := s.X.(*ast.Ident)
				return ok && id.Name == "audit" && s.Sel.Name == x
			}
			id, ok := e.(*ast.Ident)
			return ok && inAudit && id.Name == x
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.CallExpr:
				if (auditName(n.Fun, "Errorf")) && len(n.Args) > 0 {
					checked++
					if isLit(n.Args[0]) {
						t.Errorf("%s: audit.Errorf with the code %s: use an audit.Code constant", fset.Position(n.Pos()), n.Args[0].(*ast.BasicLit).Value)
					}
				}
				if auditName(n.Fun, "ErrorCode") {
					checked++
				}
			case *ast.CompositeLit:
				if auditName(n.Type, "Error") {
					for _, el := range n.Elts {
						if kv, ok := el.(*ast.KeyValueExpr); ok && isLit(kv.Value) {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "Code" {
								t.Errorf("%s: audit.Error{Code: %s}: use an audit.Code constant", fset.Position(kv.Pos()), kv.Value.(*ast.BasicLit).Value)
							}
						}
					}
				}
			case *ast.BinaryExpr:
				if n.Op != token.EQL && n.Op != token.NEQ {
					return true
				}
				for _, side := range [][2]ast.Expr{{n.X, n.Y}, {n.Y, n.X}} {
					if c, ok := side[0].(*ast.CallExpr); ok && auditName(c.Fun, "ErrorCode") && isLit(side[1]) {
						t.Errorf("%s: audit.ErrorCode compared with %s: use an audit.Code constant", fset.Position(n.Pos()), side[1].(*ast.BasicLit).Value)
					}
				}
			}
			return true
		})
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 50 {
		t.Fatalf("checked %d uses of audit.Errorf and audit.ErrorCode; want the tree's hundred-odd: wrong root %s?", checked, root)
	}
}
