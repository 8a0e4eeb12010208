package plugins_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"crier/internal/config"
	"crier/internal/crierproc"
	"crier/plugins"
	_ "crier/plugins/all"
)

// readmeSections are the headings every plugin's README.md must have.
var readmeSections = []string{"## Configuration", "## Metrics"}

// minimalConfig is a valid config to which a plugin's sample.conf is
// appended.
const minimalConfig = "[xmpp]\njid = \"crier@example.org\"\npassword = \"x\"\n\n"

// pluginDirs lists the plugin folders: every directory under plugins/ but
// all/ and pluginstest/ (the fake host for plugin tests) that holds Go
// files of its own (a folder with only sub-packages,
// such as a plugin's libraries written before the plugin, is not one yet).
func pluginDirs(t *testing.T) []string {
	t.Helper()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var dirs []string
	for _, e := range entries {
		if e.IsDir() && e.Name() != "all" && e.Name() != "testdata" && e.Name() != "pluginstest" {
			if gos, _ := filepath.Glob(filepath.Join(e.Name(), "*.go")); len(gos) > 0 {
				dirs = append(dirs, e.Name())
			}
		}
	}
	return dirs
}

// TestPluginFolders checks that every plugin folder is registered under its
// own name, is imported by plugins/all, and holds the files a plugin has.
func TestPluginFolders(t *testing.T) {
	names := plugins.Names()
	dirs := pluginDirs(t)
	if len(names) == 0 {
		t.Fatal("no plugin registered: plugins/all imports none")
	}
	for _, n := range names {
		if !slices.Contains(dirs, n) {
			t.Errorf("plugin %q is registered but plugins/%s/ does not exist", n, n)
		}
	}
	for _, d := range dirs {
		if !slices.Contains(names, d) {
			t.Errorf("plugins/%s/ is not registered (missing plugins/all/%s.go or init)", d, d)
		}
		imp, err := os.ReadFile(filepath.Join("all", d+".go"))
		if err != nil || !strings.Contains(string(imp), `_ "crier/plugins/`+d+`"`) {
			t.Errorf("plugins/all/%s.go does not import crier/plugins/%s (%v)", d, d, err)
		}
		for _, f := range []string{d + ".go", d + "_test.go", "doc.go", "sample.conf", "README.md"} {
			if _, err := os.Stat(filepath.Join(d, f)); err != nil {
				t.Errorf("plugins/%s: %v", d, err)
			}
		}
		if fi, err := os.Stat(filepath.Join(d, "testdata")); err != nil || !fi.IsDir() {
			t.Errorf("plugins/%s: no testdata folder", d)
		}
	}
}

// TestPluginReadmes checks that every plugin documents its configuration
// and metrics.
func TestPluginReadmes(t *testing.T) {
	for _, n := range plugins.Names() {
		data, err := os.ReadFile(filepath.Join(n, "README.md"))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		lines := strings.Split(string(data), "\n")
		if !strings.HasPrefix(lines[0], "# ") {
			t.Errorf("%s/README.md does not start with a title", n)
		}
		for _, s := range readmeSections {
			if !slices.Contains(lines, s) {
				t.Errorf("%s/README.md has no %q section", n, s)
			}
		}
	}
}

// TestPluginSampleConfigs checks that every plugin's sample.conf, appended
// to a minimal config, loads and enables the plugin.
func TestPluginSampleConfigs(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	for _, n := range plugins.Names() {
		sample, err := os.ReadFile(filepath.Join(n, "sample.conf"))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		file := filepath.Join(n, "sample.conf")
		cfg, err := config.LoadBytes(file, append([]byte(minimalConfig), sample...))
		if err != nil {
			t.Errorf("%s: sample.conf does not load:\n%v", n, err)
			continue
		}
		built, err := plugins.Build(cfg.Plugins, cfg.PluginCore())
		if err != nil {
			t.Errorf("%s: sample.conf is refused by the plugin:\n%v", n, err)
			continue
		}
		found := false
		for _, p := range built {
			found = found || p.Name() == n
		}
		if !found {
			t.Errorf("%s: sample.conf does not enable the plugin", n)
		}
	}
}

// onByDefault are the plugins that run without a table of their own: the
// built-in commands work out of the box.
var onByDefault = []string{"commands"}

// TestMinimalConfigEnablesNothing checks that no plugin runs unless its
// table asks for it, but those on by default.
func TestMinimalConfigEnablesNothing(t *testing.T) {
	t.Setenv(config.PasswordEnv, "")
	cfg, err := config.LoadBytes("min.toml", []byte(minimalConfig))
	if err != nil {
		t.Fatal(err)
	}
	built, err := plugins.Build(cfg.Plugins, cfg.PluginCore())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range built {
		names = append(names, p.Name())
	}
	if !slices.Equal(names, onByDefault) {
		t.Fatalf("Build(minimal) = %v, want %v", names, onByDefault)
	}
}

// TestCrierCheckAcceptsSamples runs `crier check` on each plugin's
// sample.conf appended to a minimal config, as a user would.
func TestCrierCheckAcceptsSamples(t *testing.T) {
	bin := crierproc.Binary(t)
	for _, n := range plugins.Names() {
		sample, err := os.ReadFile(filepath.Join(n, "sample.conf"))
		if err != nil {
			t.Errorf("%s: %v", n, err)
			continue
		}
		path := crierproc.WriteFile(t, n+".toml", append([]byte(minimalConfig), sample...))
		cmd := exec.Command(bin, "check", "-c", path)
		cmd.Env = append(os.Environ(), config.PasswordEnv+"=")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("crier check on %s's sample.conf: %v\n%s", n, err, out)
		}
	}
}
