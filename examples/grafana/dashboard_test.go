// Package grafana_test checks the Grafana dashboard: every metric its
// queries use is one crier documents, so that a renamed or removed metric
// fails here rather than as an empty panel.
package grafana_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
)

const dashboardFile = "crier-dashboard.json"

// panel is what the test reads of a dashboard panel.
type panel struct {
	ID         int    `json:"id"`
	Type       string `json:"type"`
	Title      string `json:"title"`
	Datasource *struct {
		UID string `json:"uid"`
	} `json:"datasource"`
	Targets []struct {
		Expr string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // a collapsed row's panels
}

// dashboard is what the test reads of the dashboard's JSON model.
type dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// exprs returns every query of the dashboard, named by the panel (or
// variable) that holds it.
func exprs(t *testing.T, d dashboard) map[string][]string {
	t.Helper()
	out := map[string][]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			for _, tg := range p.Targets {
				out[p.Title] = append(out[p.Title], tg.Expr)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct {
			Query string `json:"query"`
		}
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query: %v", v.Name, err)
		}
		out["variable "+v.Name] = append(out["variable "+v.Name], q.Query)
	}
	return out
}

var (
	// Parts of a PromQL expression that hold no metric name.
	stringLit  = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	matchers   = regexp.MustCompile(`\{[^{}]*\}`)
	ranges     = regexp.MustCompile(`\[[^\]]*\]`)
	grouping   = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)`)
	variables  = regexp.MustCompile(`\$\{?\w+\}?`)
	numbers    = regexp.MustCompile(`\b\d[\w.]*`) // 0.99, 5m, 1h30m, 1e3
	identifier = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	// labelValues is Grafana's label_values(METRIC, LABEL) variable query.
	labelValues = regexp.MustCompile(`^label_values\(\s*([A-Za-z_:][A-Za-z0-9_:]*)`)
)

// promqlWords are PromQL's keywords, which look like identifiers.
var promqlWords = []string{"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
	"group_left", "group_right", "inf", "nan"}

// metricNames returns the metric names an expression uses: identifiers
// that are neither functions or aggregations (followed by "("), nor
// keywords, nor inside label matchers, grouping clauses, strings, ranges,
// numbers and durations or Grafana variables.
func metricNames(expr string) []string {
	if m := labelValues.FindStringSubmatch(expr); m != nil {
		return []string{m[1]}
	}
	s := stringLit.ReplaceAllString(expr, " ")
	s = matchers.ReplaceAllString(s, " ")
	s = ranges.ReplaceAllString(s, " ")
	s = grouping.ReplaceAllString(s, " ")
	s = variables.ReplaceAllString(s, " ")
	s = numbers.ReplaceAllString(s, " ")
	var names []string
	for _, m := range identifier.FindAllStringSubmatch(s, -1) {
		word := strings.TrimRight(m[0], " \t\n(")
		if m[1] != "" || slices.Contains(promqlWords, strings.ToLower(word)) {
			continue
		}
		if !slices.Contains(names, word) {
			names = append(names, word)
		}
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for _, c := range []struct {
		expr string
		want []string
	}{
		{`crier_connected`, []string{"crier_connected"}},
		{`max(crier_connected{instance=~"$instance"})`, []string{"crier_connected"}},
		{`sum by (reason) (increase(crier_disconnects_total{instance=~"$instance"}[$__rate_interval]))`, []string{"crier_disconnects_total"}},
		{`histogram_quantile(0.99, sum by (le) (rate(crier_delivery_seconds_bucket{a="b,c}"}[5m])))`, []string{"crier_delivery_seconds_bucket"}},
		{`sum(crier_rooms_joined) / sum(crier_rooms_configured) > bool 0`, []string{"crier_rooms_joined", "crier_rooms_configured"}},
		{`a_total and on (instance) b_total offset 5m`, []string{"a_total", "b_total"}},
		{`label_values(crier_build_info, instance)`, []string{"crier_build_info"}},
	} {
		if got := metricNames(c.expr); !slices.Equal(got, c.want) {
			t.Errorf("metricNames(%q) = %q, want %q", c.expr, got, c.want)
		}
	}
}

// documented returns the metric names of the "## Metrics" section of a
// Markdown file: the backquoted names in the first column of its tables,
// without their labels, mapped to whether the row says it is a histogram.
func documented(t *testing.T, path string) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	in := false
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "## ") {
			in = strings.TrimSpace(line) == "## Metrics"
			continue
		}
		if !in || !strings.HasPrefix(line, "|") {
			continue
		}
		cells := strings.Split(line, "|")
		if len(cells) < 3 {
			continue
		}
		histogram := strings.Contains(line, "histogram")
		for _, m := range regexp.MustCompile("`([a-z_:][a-z0-9_:]*)(?:\\{[^`]*\\})?`").FindAllStringSubmatch(cells[1], -1) {
			names[m[1]] = histogram
		}
	}
	return names
}

// documentedMetrics reads docs/OPERATIONS.md and every plugin's README.md.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	all := documented(t, filepath.Join("..", "..", "docs", "OPERATIONS.md"))
	if _, ok := all["crier_connected"]; len(all) < 20 || !ok {
		t.Fatalf("docs/OPERATIONS.md: the metrics table was not found (read %d names)", len(all))
	}
	readmes, err := filepath.Glob(filepath.Join("..", "..", "plugins", "*", "README.md"))
	if err != nil || len(readmes) == 0 {
		t.Fatalf("no plugin README.md found: %v", err)
	}
	for _, r := range readmes {
		for n, h := range documented(t, r) {
			all[n] = h
		}
	}
	return all
}

func TestDashboardMetricsAreDocumented(t *testing.T) {
	d := loadDashboard(t)
	doc := documentedMetrics(t)
	used := map[string]bool{}
	for where, list := range exprs(t, d) {
		for _, e := range list {
			names := metricNames(e)
			if len(names) == 0 {
				t.Errorf("panel %q: query %q uses no metric", where, e)
			}
			for _, n := range names {
				used[n] = true
				if _, ok := doc[n]; ok {
					continue
				}
				base := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					base = strings.TrimSuffix(base, suffix)
				}
				if base != n && doc[base] {
					continue
				}
				t.Errorf("panel %q: metric %s is documented neither in docs/OPERATIONS.md nor in a plugin README's ## Metrics (query %q)", where, n, e)
			}
		}
	}
	// The subjects the dashboard is for: a panel on each.
	for _, want := range []string{"crier_connected", "crier_disconnects_total", "crier_rooms_joined",
		"crier_reply_seconds_bucket", "crier_rule_hits_total", "crier_delivery_seconds_bucket",
		"crier_outbox_depth", "crier_outbox_dropped_total", "crier_nats_relay_lag_seconds",
		"crier_nats_relayed_total", "crier_webhook_requests_total", "crier_webhook_delivery_seconds_bucket",
		"crier_chain_dropped_total", "crier_plugin_failures_total", "crier_ha_leader", "crier_plugin_actions_total",
		"crier_moderator_hits_total", "crier_moderator_actions_total", "crier_moderator_failures_total"} {
		if !used[want] {
			t.Errorf("no panel uses %s", want)
		}
	}
	var list []string
	for n := range used {
		list = append(list, n)
	}
	sort.Strings(list)
	t.Logf("%d metrics used: %s", len(list), strings.Join(list, " "))
}

func TestDashboardShape(t *testing.T) {
	d := loadDashboard(t)
	if d.Title == "" || d.UID == "" {
		t.Errorf("title %q, uid %q: both are needed for an import", d.Title, d.UID)
	}
	hasDS := false
	for _, v := range d.Templating.List {
		if v.Name == "datasource" && v.Type == "datasource" {
			hasDS = true
		}
	}
	if !hasDS {
		t.Error("no datasource variable named datasource")
	}
	ids := map[int]string{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if prev, ok := ids[p.ID]; ok {
				t.Errorf("panels %q and %q share the id %d", prev, p.Title, p.ID)
			}
			ids[p.ID] = p.Title
			if p.Type != "row" {
				if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
					t.Errorf("panel %q does not query the ${datasource} variable", p.Title)
				}
				if len(p.Targets) == 0 {
					t.Errorf("panel %q has no query", p.Title)
				}
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
}
