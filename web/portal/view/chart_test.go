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
	times := make([]time.Time, 6)
	for i := range times {
		times[i] = start.Add(time.Duration(i) * time.Minute)
	}
	nan := math.NaN()
	for _, tc := range []struct {
		name      string
		c         Chart
		contains  []string
		count     map[string]int
		forbidden []string
	}{
		{
			name:     "stacked bars skip zero layers",
			c:        Chart{Title: "Requests <all>", Stacked: true, Times: times, Series: []Series{{Name: "2xx", Class: "s1", Values: []float64{1, 0, 2, 0, 0, 3}}, {Name: "5xx", Class: "s3", Values: []float64{0, 0, 1, 0, 0, 0}}}},
			contains: []string{`aria-label="Requests &lt;all&gt;. "`, `class="s1"`, "03:00"},
			count:    map[string]int{`<rect class="s1"`: 3, `<rect class="s3"`: 1},
		},
		{
			name:      "lines break at empty buckets",
			c:         Chart{Title: "Latency", Times: times, Series: []Series{{Name: "p50", Class: "s1", Values: []float64{1, 2, nan, 4, nan, 6}}}},
			count:     map[string]int{"<polyline": 1, "<circle": 2},
			forbidden: []string{"NaN"},
		},
		{
			name:  "empty",
			c:     Chart{Title: "Nothing"},
			count: map[string]int{"<rect": 0, "<polyline": 0},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svg := tc.c.SVG()
			if !strings.HasPrefix(svg, "<svg") || !strings.HasSuffix(svg, "</svg>") {
				t.Fatalf("not an svg: %.80s", svg)
			}
			for _, s := range tc.contains {
				if !strings.Contains(svg, s) {
					t.Errorf("svg lacks %q", s)
				}
			}
			for s, n := range tc.count {
				if got := strings.Count(svg, s); got != n {
					t.Errorf("%q appears %d times, want %d", s, got, n)
				}
			}
			for _, s := range tc.forbidden {
				if strings.Contains(svg, s) {
					t.Errorf("svg contains %q", s)
				}
			}
		})
	}
}
