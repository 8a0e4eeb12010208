// Package arch checks the import rule of docs/ARCHITECTURE.md: a package
// imports only its own tier or below.
package arch

import (
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

const module = "crier"

// imports returns, for every package directory of the module, the crier
// packages its non-test Go files import.
func imports(t *testing.T) map[string]map[string]bool {
	t.Helper()
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]bool{}
	fset := token.NewFileSet()
	err = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "testdata", "data":
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
		pkg := module
		if rel != "." {
			pkg = module + "/" + filepath.ToSlash(rel)
		}
		if out[pkg] == nil {
			out[pkg] = map[string]bool{}
		}
		for _, im := range f.Imports {
			p := strings.Trim(im.Path.Value, `"`)
			if p == module || strings.HasPrefix(p, module+"/") {
				out[pkg][p] = true
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) < 20 {
		t.Fatalf("found only %d packages: the walk is wrong", len(out))
	}
	return out
}

// tier returns the tier of a package: 0 bottom, 1 plugins, 2 top, 3 test
// and demo helpers (which may import anything).
func tier(p string) int {
	rest := strings.TrimPrefix(p, module+"/")
	switch {
	case strings.HasPrefix(rest, "cmd/"), rest == "bot", strings.HasPrefix(rest, "bot/"):
		return 2
	case strings.HasPrefix(rest, "test/"), strings.HasPrefix(rest, "examples/"),
		rest == "internal/xmpptest", rest == "internal/peers", rest == "internal/crierproc", rest == "internal/dnstest",
		rest == "plugins/pluginstest":
		return 3
	case strings.HasPrefix(rest, "plugins/"):
		return 1
	}
	return 0
}

// pluginOf is the plugin a package of the plugins tier belongs to:
// plugins/NAME and the packages under it are one plugin.
func pluginOf(p string) string {
	parts := strings.SplitN(strings.TrimPrefix(p, module+"/"), "/", 3)
	if len(parts) < 2 {
		return p
	}
	return parts[0] + "/" + parts[1]
}

func TestImportTiers(t *testing.T) {
	var bad []string
	for pkg, deps := range imports(t) {
		for dep := range deps {
			pt, dt := tier(pkg), tier(dep)
			switch {
			case pt == 3:
				// test and demo helpers may use anything
			case pkg == module+"/cmd/crier" && dep == module+"/examples/webchat":
				// the demo's web chat, linked only into the default build
			case dt == 3:
				bad = append(bad, pkg+" imports the test helper "+dep)
			case dt > pt:
				bad = append(bad, pkg+" imports "+dep+", a higher tier")
			case pt == 1 && dt == 1 && pkg != module+"/plugins/all" && pluginOf(pkg) != pluginOf(dep):
				bad = append(bad, pkg+" imports another plugin, "+dep+" (plugins reach each other only through the host)")
			}
		}
	}
	sort.Strings(bad)
	for _, b := range bad {
		t.Error(b)
	}
}

// TestMiniServerStandsAlone: the embedded server imports only the
// standard library, mellium and the stdlib-only leaves, and only the demo
// command links it into production code.
func TestMiniServerStandsAlone(t *testing.T) {
	all := imports(t)
	allowed := map[string]bool{module + "/internal/xmlsplit": true, module + "/internal/boshwire": true,
		module + "/internal/wswire": true}
	for pkg, deps := range all {
		if strings.HasPrefix(pkg, module+"/internal/miniserver") {
			for dep := range deps {
				if !allowed[dep] && !strings.HasPrefix(dep, module+"/internal/miniserver") {
					t.Errorf("%s imports %s", pkg, dep)
				}
			}
			continue
		}
		if tier(pkg) == 3 || pkg == module+"/cmd/crier" {
			continue
		}
		for dep := range deps {
			if strings.HasPrefix(dep, module+"/internal/miniserver") {
				t.Errorf("production package %s imports the embedded server %s", pkg, dep)
			}
		}
	}
	for _, leaf := range []string{"internal/xmlsplit", "internal/boshwire", "internal/wswire"} {
		for dep := range all[module+"/"+leaf] {
			if dep != module+"/internal/xmlsplit" && (leaf != "internal/wswire" || dep != module+"/internal/boshwire") {
				t.Errorf("%s must stay stdlib-only (and xmlsplit, boshwire for wswire), but imports %s", leaf, dep)
			}
		}
	}
}

// TestPluginsPackageImportsNoConfig: the interface package stays free of
// the config package (plugins own their tables).
func TestPluginsPackageImportsNoConfig(t *testing.T) {
	for dep := range imports(t)[module+"/plugins"] {
		if dep != module+"/internal/state" {
			t.Errorf("crier/plugins imports %s", dep)
		}
	}
}
