package bridge

import (
	"go/ast"
	"go/parser"
	"go/token"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// Codes must list every Code constant: the broker starts one metric
// series per code from it, and a code missing there would appear on
// /metrics only after its first refusal.
func TestCodesListsEveryCodeConstant(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var consts []string
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, s := range g.Specs {
			v := s.(*ast.ValueSpec)
			for i, name := range v.Names {
				if !strings.HasPrefix(name.Name, "Code") || i >= len(v.Values) {
					continue
				}
				lit, ok := v.Values[i].(*ast.BasicLit)
				if !ok {
					continue
				}
				code, err := strconv.Unquote(lit.Value)
				if err != nil {
					t.Fatal(err)
				}
				consts = append(consts, code)
			}
		}
	}
	if len(consts) < 10 {
		t.Fatalf("found %d Code constants in errors.go, want at least 10: the test no longer reads them", len(consts))
	}
	for _, c := range consts {
		if !slices.Contains(Codes(), c) {
			t.Errorf("Codes() misses %q", c)
		}
	}
	if len(Codes()) != len(consts) {
		t.Errorf("Codes() has %d entries, errors.go %d constants", len(Codes()), len(consts))
	}
}
