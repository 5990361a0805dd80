package deploy

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"go.yaml.in/yaml/v3"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// The monitoring files: deploy/prometheus/alerts.yml (with its unit tests
// in alerts_test.yml) and deploy/grafana/inboxmq.json. promtool (Debian's
// prometheus package, installed by `make deps`) checks the rules and every
// PromQL expression of the dashboard; a live broker shows that every
// metric they name exists.

func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err == nil {
		return path
	}
	if os.Getenv("INBOXMQ_REQUIRE_EXAMPLES") == "1" {
		t.Fatalf("promtool not found: `make deps` installs it (Debian package prometheus): %v", err)
	}
	t.Skipf("promtool not found (make test installs it, Debian package prometheus): %v", err)
	return ""
}

func runPromtool(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command(promtool(t), args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func prometheusDir(t *testing.T) string {
	return filepath.Join(mqtttest.ModuleRoot(t), "deploy", "prometheus")
}

// The rules load, and their unit tests pass: each alert fires where it
// should and stays quiet where it should not.
func TestAlertRules(t *testing.T) {
	out := runPromtool(t, prometheusDir(t), "check", "rules", "alerts.yml")
	if !strings.Contains(out, "SUCCESS") {
		t.Fatalf("promtool check rules: %s", out)
	}
	for _, alert := range []string{"InboxmqDown", "InboxmqStoreErrors", "InboxmqDeliveryBacklogGrowing", "InboxmqEventsFailing",
		"InboxmqEventsLost", "InboxmqRedisDown", "InboxmqMemoryNearLimit", "InboxmqHTTPErrors"} {
		if !slices.Contains(alertNames(t), alert) {
			t.Errorf("alerts.yml has no %s alert", alert)
		}
	}
	runPromtool(t, prometheusDir(t), "test", "rules", "alerts_test.yml")
}

// A broken rule is refused: the check above can fail.
func TestAlertRulesCheckCatchesABadExpression(t *testing.T) {
	dir := t.TempDir()
	bad := "groups:\n  - name: x\n    rules:\n      - alert: Broken\n        expr: sum(rate(inboxmq_store_errors_total[5m]) > \n"
	if err := os.WriteFile(filepath.Join(dir, "bad.yml"), []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool(t), "check", "rules", "bad.yml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Fatalf("promtool accepted an unbalanced expression:\n%s", out)
	}
}

type rulesFile struct {
	Groups []struct {
		Name  string `yaml:"name"`
		Rules []struct {
			Alert       string            `yaml:"alert"`
			Expr        string            `yaml:"expr"`
			For         string            `yaml:"for"`
			Labels      map[string]string `yaml:"labels"`
			Annotations map[string]string `yaml:"annotations"`
		} `yaml:"rules"`
	} `yaml:"groups"`
}

func readRules(t *testing.T) rulesFile {
	t.Helper()
	var f rulesFile
	data, err := os.ReadFile(filepath.Join(prometheusDir(t), "alerts.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &f); err != nil {
		t.Fatalf("alerts.yml: %v", err)
	}
	return f
}

func alertNames(t *testing.T) []string {
	var out []string
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			out = append(out, r.Alert)
		}
	}
	return out
}

// Every alert has a severity and says what happened and what it means.
func TestAlertRulesAreDescribed(t *testing.T) {
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			if sev := r.Labels["severity"]; sev != "warning" && sev != "critical" {
				t.Errorf("%s: severity %q, want warning or critical", r.Alert, sev)
			}
			if r.Annotations["summary"] == "" || r.Annotations["description"] == "" {
				t.Errorf("%s: needs a summary and a description", r.Alert)
			}
			if r.For == "" && !strings.HasSuffix(r.Alert, "Lost") {
				t.Errorf("%s: no for:, so one bad scrape pages someone", r.Alert)
			}
		}
	}
}

type dashboard struct {
	Inputs []struct {
		Name     string `json:"name"`
		PluginID string `json:"pluginId"`
	} `json:"__inputs"`
	SchemaVersion int     `json:"schemaVersion"`
	UID           string  `json:"uid"`
	Panels        []panel `json:"panels"`
}

type panel struct {
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mqtttest.ModuleRoot(t), "deploy", "grafana", "inboxmq.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatalf("inboxmq.json: %v", err)
	}
	return d
}

// dashboardExprs returns every query of the dashboard by panel title.
func dashboardExprs(d dashboard) map[string][]string {
	out := map[string][]string{}
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out[p.Title] = append(out[p.Title], tg.Expr)
		}
	}
	return out
}

// The dashboard imports into Grafana with a Prometheus data source chosen
// at import, has the panels operators need, and every query is valid
// PromQL: promtool checks them as recording rules, once Grafana's
// variables are replaced by what Grafana would put there.
func TestGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.SchemaVersion < 36 || d.UID == "" {
		t.Errorf("schemaVersion %d, uid %q: want a current schema (>= 36) and a fixed uid", d.SchemaVersion, d.UID)
	}
	if len(d.Inputs) != 1 || d.Inputs[0].Name != "DS_PROMETHEUS" || d.Inputs[0].PluginID != "prometheus" {
		t.Errorf("__inputs = %+v, want one Prometheus data source input DS_PROMETHEUS", d.Inputs)
	}
	exprs := dashboardExprs(d)
	for _, want := range []string{"Connections", "Messages in / out", "Delivery latency", "Offline backlog at connect",
		"Events backlog", "Store latency p99 by operation", "Store errors by operation", "Redis up", "Redis pool",
		"HTTP requests by route", "HTTP latency p99 by route", "HTTP 5xx ratio", "Memory vs limit", "Goroutines"} {
		if len(exprs[want]) == 0 {
			t.Errorf("no %q panel with a query", want)
		}
	}
	for _, p := range d.Panels {
		if p.Type != "row" && !strings.Contains(string(p.Datasource), "${DS_PROMETHEUS}") {
			t.Errorf("panel %q: data source %s, want ${DS_PROMETHEUS}", p.Title, p.Datasource)
		}
	}
	var rules strings.Builder
	rules.WriteString("groups:\n  - name: dashboard\n    rules:\n")
	n := 0
	for title, list := range exprs {
		for _, e := range list {
			e = strings.NewReplacer("$__rate_interval", "5m", "$instance", ".*").Replace(e)
			q, _ := json.Marshal(e) // a JSON string is a YAML string
			fmt.Fprintf(&rules, "      - record: dashboard:q%d # %s\n        expr: %s\n", n, strings.ReplaceAll(title, "\n", " "), q)
			n++
		}
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "dashboard.yml"), []byte(rules.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	if out := runPromtool(t, dir, "check", "rules", "dashboard.yml"); !strings.Contains(out, fmt.Sprintf("%d rules found", n)) {
		t.Errorf("promtool checked fewer than the dashboard's %d queries:\n%s", n, out)
	}
}

// metricName finds the names of series in PromQL: the broker's own
// (inboxmq_), the Go runtime's (go_) and the process's (process_).
// Quoted strings (label values, regexps) are removed first.
var (
	metricName  = regexp.MustCompile(`\b(?:inboxmq|go|process)_[a-zA-Z0-9_]+`)
	quotedValue = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
)

func namesIn(expr string) []string {
	return metricName.FindAllString(quotedValue.ReplaceAllString(expr, `""`), -1)
}

// Every metric the dashboard and the alerts query exists on a live broker
// (the shipped binary, on the Redis store with a webhook sink, so the
// Redis and events metrics are there), and docs/operations.md's metrics
// table lists exactly what the broker exports.
func TestDashboardAndAlertMetricsExistOnALiveBroker(t *testing.T) {
	redis := redistest.Start(t, redistest.Config{})
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(204) }))
	defer hook.Close()
	cfg := mqtttest.WriteConfig(t, t.TempDir(),
		"store: redis",
		fmt.Sprintf("redis: {addresses: [%q], prefix: \"metrics:\"}", redis.Addr),
		fmt.Sprintf("events: {webhook: {url: %q, secret: \"webhook-secret-0123456789\"}}", hook.URL))
	p := mqtttest.StartBinary(t, mqtttest.ShippedBinary(t), cfg)
	m := mqtttest.Scrape(t, p.Admin)
	have := m.Names()

	queried := map[string][]string{} // metric -> where
	for title, list := range dashboardExprs(readDashboard(t)) {
		for _, e := range list {
			for _, name := range namesIn(e) {
				queried[name] = append(queried[name], "dashboard panel "+title)
			}
		}
	}
	for _, g := range readRules(t).Groups {
		for _, r := range g.Rules {
			for _, name := range namesIn(r.Expr) {
				queried[name] = append(queried[name], "alert "+r.Alert)
			}
		}
	}
	if len(queried) < 20 {
		t.Fatalf("found %d metric names in the dashboard and rules, want at least 20: the extraction is broken", len(queried))
	}
	for name, where := range queried {
		if !have[name] {
			t.Errorf("%s (queried by %s) is not on a live broker's /metrics", name, strings.Join(where, ", "))
		}
	}
	if v, ok := m.Value("inboxmq_redis_up", nil); !ok || v != 1 {
		t.Errorf("inboxmq_redis_up = %v (present %v) with Redis running, want 1", v, ok)
	}
	for _, sink := range []string{"webhook", "redis"} {
		if v, ok := m.Value("inboxmq_events_failed_total", map[string]string{"sink": sink}); !ok || v != 0 {
			t.Errorf(`inboxmq_events_failed_total{sink=%q} = %v (present %v), want 0 on the first scrape`, sink, v, ok)
		}
	}

	// The embedded store's own metrics come from a second broker on it.
	embedded := mqtttest.StartBinary(t, mqtttest.ShippedBinary(t), mqtttest.WriteConfig(t, t.TempDir()))
	me := mqtttest.Scrape(t, embedded.Admin)
	onEmbedded := me.Names()
	either := maps.Clone(have)
	maps.Copy(either, onEmbedded)
	documented := documentedMetrics(t)
	for _, families := range []map[string]*dto.MetricFamily{m.Families, me.Families} {
		for name := range families {
			if strings.HasPrefix(name, "inboxmq_") && !documented[name] {
				t.Errorf("%s is exported but not in docs/operations.md's metrics table", name)
			}
		}
	}
	for name := range documented {
		if !either[name] {
			t.Errorf("docs/operations.md lists %s, which neither a Redis nor an embedded-store broker exports", name)
		}
	}
	// Deny rows: each store's metrics only where that store is.
	if have["inboxmq_store_wal_fsync_duration_seconds"] {
		t.Error("a broker on Redis exports the embedded store's WAL sync latency")
	}
	if onEmbedded["inboxmq_redis_up"] {
		t.Error("an embedded-store broker exports inboxmq_redis_up")
	}

	// Redis stops: the next scrape says so (within the PING's 1 s).
	if err := redis.Kill(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, ok := mqtttest.Scrape(t, p.Admin).Value("inboxmq_redis_up", nil)
		if ok && v == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("inboxmq_redis_up = %v (present %v) 10 s after Redis was killed, want 0", v, ok)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// documentedMetrics returns the inboxmq_ names of docs/operations.md's
// "## Metrics" section.
func documentedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(mqtttest.ModuleRoot(t), "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(data)
	start := strings.Index(text, "\n## Metrics\n")
	if start < 0 {
		t.Fatal(`docs/operations.md has no "## Metrics" section`)
	}
	section := text[start+1:]
	if end := strings.Index(section[3:], "\n## "); end >= 0 {
		section = section[:end+3]
	}
	out := map[string]bool{}
	for _, name := range regexp.MustCompile(`\binboxmq_[a-z0-9_]+`).FindAllString(section, -1) {
		out[name] = true
	}
	if len(out) < 20 {
		names := make([]string, 0, len(out))
		for n := range out {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Fatalf("the metrics section names only %v", names)
	}
	return out
}
