package main

import (
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// The leaves of the module (ARCHITECTURE.md 4): they never import gateway/ or each
// other, so that any gateway package may use any leaf. Only gateway/cmd wires
// everything together, which is why this check lives here.
var leaves = []string{"shmring", "workerproto", "router", "tls", "ops"}

// TestLeavesImportNoGatewayNorEachOther reads the imports of every Go file under
// each leaf (tests included) and fails on an import of a module package outside
// that leaf's own tree.
func TestLeavesImportNoGatewayNorEachOther(t *testing.T) {
	root := moduleRoot(t)
	const module = "github.com/covetpy/covetpy"
	files := 0
	for _, leaf := range leaves {
		dir := filepath.Join(root, leaf)
		if _, err := os.Stat(dir); os.IsNotExist(err) {
			continue // tls/ does not exist yet
		}
		err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") {
				return err
			}
			f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
			if err != nil {
				return err
			}
			files++
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if p != module && !strings.HasPrefix(p, module+"/") {
					continue
				}
				if p == module+"/"+leaf || strings.HasPrefix(p, module+"/"+leaf+"/") {
					continue
				}
				rel, _ := filepath.Rel(root, path)
				t.Errorf("%s imports %s: leaf %s may import only the standard library, third-party modules and its own packages", rel, p, leaf)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if files == 0 {
		t.Fatal("no Go files found under the leaves")
	}
}

// moduleRoot is the directory holding go.mod, above the test's working directory.
func moduleRoot(t *testing.T) string {
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}
