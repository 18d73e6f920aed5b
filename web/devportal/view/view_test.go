package view

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestNiceMax(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   float64
		want float64
	}{
		{"zero", 0, 1}, {"one", 1, 1}, {"small", 3, 5}, {"tens", 37, 50}, {"exact", 200, 200}, {"fraction", 0.3, 0.5}, {"big", 1234, 2000},
	} {
		if got := niceMax(tc.in); got != tc.want {
			t.Errorf("%s: niceMax(%v) = %v, want %v", tc.name, tc.in, got, tc.want)
		}
	}
}

func TestChartSVG(t *testing.T) {
	t.Parallel()
	start := time.Date(2026, 1, 2, 3, 0, 0, 0, time.UTC)
	times := make([]time.Time, 4)
	for i := range times {
		times[i] = start.Add(time.Duration(i) * time.Hour)
	}
	nan := math.NaN()
	for _, tc := range []struct {
		name     string
		c        Chart
		contains []string
		lacks    []string
	}{
		{"stacked", Chart{ID: "c1", Title: "Requests", Summary: "3 <requests>", Times: times, Stacked: true,
			Series: []Series{{Name: "2xx", Class: "s1", Values: []float64{1, 0, 2, 0}}}},
			[]string{`id="c1"`, `<rect class="s1"`, "3 &lt;requests&gt;"}, []string{"<requests>", "polyline"}},
		{"lines with a gap", Chart{ID: "c2", Title: "Latency", Times: times,
			Series: []Series{{Name: "p50", Class: "s1", Values: []float64{1, 2, nan, 4}}}},
			[]string{`<polyline class="line s1"`, `<circle class="dot s1"`}, []string{"NaN"}},
		{"no points", Chart{ID: "c3", Title: "Empty"}, []string{`id="c3"`, "</svg>"}, []string{"<rect"}},
		{"escaped id", Chart{ID: `"><script>`, Title: "x"}, []string{`&#34;&gt;&lt;script&gt;`}, []string{"<script>"}},
	} {
		svg := tc.c.SVG()
		for _, want := range tc.contains {
			if !strings.Contains(svg, want) {
				t.Errorf("%s: lacks %q in %s", tc.name, want, svg)
			}
		}
		for _, bad := range tc.lacks {
			if strings.Contains(svg, bad) {
				t.Errorf("%s: holds %q", tc.name, bad)
			}
		}
	}
}

func TestFormatting(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		got  string
		want string
	}{
		{"count small", count(12), "12"},
		{"count thousands", count(1234567), "1,234,567"},
		{"count negative", count(-1234), "-1,234"},
		{"width rounds up to 5", width(12), "w15"},
		{"width clamps", width(140), "w100"},
		{"width zero", width(0), "w0"},
		{"ms none", ms(0), "–"},
		{"ms small", ms(3.25), "3.2 ms"},
		{"ms large", ms(250.4), "250 ms"},
		{"status", statusLabel("payment_required"), "payment required"},
	} {
		if tc.got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, tc.got, tc.want)
		}
	}
	if p := (QuotaRow{Limit: 1000, Used: 1500}).Percent(); p != 100 {
		t.Errorf("over-quota percent %d", p)
	}
	if p := (QuotaRow{}).Percent(); p != 0 {
		t.Errorf("no-quota percent %d", p)
	}
}
