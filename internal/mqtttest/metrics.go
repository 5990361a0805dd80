package mqtttest

import (
	"io"
	"maps"
	"net/http"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Metrics is one scrape of a broker's /metrics, parsed by Prometheus's own
// text parser (so a malformed exposition fails the scrape).
type Metrics struct {
	Families map[string]*dto.MetricFamily
	Raw      string
}

// Scrape reads /metrics from the admin listener at adminAddr (host:port).
func Scrape(tb testing.TB, adminAddr string) Metrics {
	tb.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	if err != nil {
		tb.Fatalf("scrape: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("scrape: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("GET /metrics: %d %s", resp.StatusCode, body)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		tb.Fatalf("parse /metrics: %v", err)
	}
	return Metrics{Families: fams, Raw: string(body)}
}

// Value returns the sample of family name whose labels include labels:
// the counter, gauge or untyped value, or a histogram's sample count. ok
// is false when there is no such sample.
func (m Metrics) Value(name string, labels map[string]string) (v float64, ok bool) {
	f := m.Families[name]
	if f == nil {
		return 0, false
	}
	for _, s := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range s.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		match := true
		for k, want := range labels {
			if have[k] != want {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		switch {
		case s.Counter != nil:
			return s.Counter.GetValue(), true
		case s.Gauge != nil:
			return s.Gauge.GetValue(), true
		case s.Histogram != nil:
			return float64(s.Histogram.GetSampleCount()), true
		case s.Untyped != nil:
			return s.Untyped.GetValue(), true
		}
	}
	return 0, false
}

// Names returns every series name the scrape holds, with a histogram's
// _bucket, _sum and _count and a summary's _sum and _count, as PromQL
// names them.
func (m Metrics) Names() map[string]bool {
	out := map[string]bool{}
	for name, f := range maps.All(m.Families) {
		out[name] = true
		switch f.GetType() {
		case dto.MetricType_HISTOGRAM:
			out[name+"_bucket"], out[name+"_sum"], out[name+"_count"] = true, true, true
		case dto.MetricType_SUMMARY:
			out[name+"_sum"], out[name+"_count"] = true, true
		}
	}
	return out
}
