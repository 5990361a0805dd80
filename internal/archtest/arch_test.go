package archtest

import (
	"bufio"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

const module = "github.com/inboxmq/inboxmq/"

// layers reads the table of docs/architecture.md: package -> layer.
func layers(t *testing.T) map[string]int {
	t.Helper()
	f, err := os.Open(filepath.Join("..", "..", "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	row := regexp.MustCompile("^\\| (\\d+) \\| `([^`]+)` \\|")
	out := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			n, _ := strconv.Atoi(m[1])
			if _, dup := out[m[2]]; dup {
				t.Errorf("docs/architecture.md lists %s twice", m[2])
			}
			out[m[2]] = n
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("no package rows found in docs/architecture.md")
	}
	return out
}

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

// packages lists the module's packages with their imports, as go list does.
func packages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", module+"...")
	cmd.Dir = filepath.Join("..", "..")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var list []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		list = append(list, p)
	}
	return list
}

// The table names every package of the module, and nothing else.
func TestArchitectureListsEveryPackage(t *testing.T) {
	doc := layers(t)
	var listed []string
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		listed = append(listed, name)
		if _, ok := doc[name]; !ok {
			t.Errorf("package %s is missing from docs/architecture.md", name)
		}
	}
	for name := range doc {
		if !slices.Contains(listed, name) {
			t.Errorf("docs/architecture.md lists %s, which go list does not know", name)
		}
	}
}

// A package imports only packages of lower layers, and nothing below
// layer 5 depends on mochi-mqtt, directly or not.
func TestLayers(t *testing.T) {
	doc := layers(t)
	for _, p := range packages(t) {
		name := strings.TrimPrefix(p.ImportPath, module)
		layer, ok := doc[name]
		if !ok {
			continue // reported by TestArchitectureListsEveryPackage
		}
		for _, imp := range p.Imports {
			dep, ours := strings.CutPrefix(imp, module)
			if !ours {
				continue
			}
			if l, ok := doc[dep]; ok && l >= layer {
				t.Errorf("%s (layer %d) imports %s (layer %d): only lower layers", name, layer, dep, l)
			}
		}
		if layer < 5 {
			for _, d := range p.Deps {
				if strings.HasPrefix(d, "github.com/mochi-mqtt/") {
					t.Errorf("%s (layer %d) depends on %s: nothing below the hooks may", name, layer, d)
					break
				}
			}
		}
	}
}
