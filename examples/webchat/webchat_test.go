package webchat_test

import (
	"encoding/json"
	"io/fs"
	"os"
	"regexp"
	"strings"
	"testing"

	"crier/examples/webchat"
)

func read(t *testing.T, name string) string {
	t.Helper()
	b, err := fs.ReadFile(webchat.FS, name)
	if err != nil {
		t.Fatalf("webchat.FS: %v", err)
	}
	return string(b)
}

// TestFiles checks that the page and everything it loads are embedded.
func TestFiles(t *testing.T) {
	for _, name := range []string{"index.html", "app.js", "style.css",
		"vendor/strophe.umd.min.js", "vendor/LICENSE.txt", "vendor/VERSION"} {
		if s := read(t, name); len(s) == 0 {
			t.Errorf("%s is empty", name)
		}
	}
	if lic := read(t, "vendor/LICENSE.txt"); !strings.Contains(lic, "Permission is hereby granted") {
		t.Errorf("vendor/LICENSE.txt is not Strophe.js's MIT licence:\n%s", lic)
	}
}

// TestPageLoadsOnlyLocalFiles checks that index.html refers to files of the
// embedded tree and to no other site.
func TestPageLoadsOnlyLocalFiles(t *testing.T) {
	page := read(t, "index.html")
	refs := regexp.MustCompile(`(?:src|href)="([^"]*)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 3 {
		t.Fatalf("index.html has %d src/href attributes, want at least 3 (style, Strophe.js, app)", len(refs))
	}
	for _, m := range refs {
		ref := m[1]
		if strings.Contains(ref, "//") || strings.HasPrefix(ref, "/") {
			t.Errorf("index.html loads %q from outside the embedded files", ref)
			continue
		}
		if _, err := fs.Stat(webchat.FS, ref); err != nil {
			t.Errorf("index.html refers to %q, which is not embedded: %v", ref, err)
		}
	}
}

// TestNoMarkupFromData checks that app.js never turns strings into markup:
// text from the network must go through textContent only.
func TestNoMarkupFromData(t *testing.T) {
	js := read(t, "app.js")
	for _, bad := range []string{".innerHTML", ".outerHTML", "insertAdjacentHTML", "document.write", "eval("} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	if !strings.Contains(js, "textContent") {
		t.Error("app.js does not use textContent")
	}
}

// TestVendoredVersionIsPinned checks that the vendored bundle is the version
// that package.json pins and package-lock.json locks.
func TestVendoredVersionIsPinned(t *testing.T) {
	var pkg struct {
		Dependencies map[string]string `json:"dependencies"`
	}
	var lock struct {
		Packages map[string]struct {
			Version string `json:"version"`
		} `json:"packages"`
	}
	for name, v := range map[string]any{"package.json": &pkg, "package-lock.json": &lock} {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(b, v); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	pinned := pkg.Dependencies["strophe.js"]
	if !regexp.MustCompile(`^\d+\.\d+\.\d+$`).MatchString(pinned) {
		t.Fatalf("package.json: strophe.js %q is not pinned to an exact version", pinned)
	}
	if got := lock.Packages["node_modules/strophe.js"].Version; got != pinned {
		t.Errorf("package-lock.json locks strophe.js %q, package.json pins %q", got, pinned)
	}
	if got, want := strings.TrimSpace(read(t, "vendor/VERSION")), "strophe.js "+pinned; got != want {
		t.Errorf("vendor/VERSION = %q, want %q (run npm ci && npm run vendor)", got, want)
	}
}
