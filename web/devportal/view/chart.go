package view

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"
)

// Series is one line or bar layer of a chart.
type Series struct {
	Name   string
	Class  string // CSS class giving the colour (s1..s4)
	Values []float64
}

// Chart is a time chart drawn server-side as inline SVG: no script, readable
// at a glance, accessible through its title and a text summary. (Adapted
// from the tenant portal's chart; the two portals share no package.)
type Chart struct {
	// ID is the svg element's id ("chart-day-requests").
	ID      string
	Title   string
	Summary string
	Times   []time.Time
	Series  []Series
	// Stacked draws bars stacked per time; otherwise lines.
	Stacked bool
}

const (
	chartW, chartH         = 720.0, 220.0
	padL, padR, padT, padB = 48.0, 12.0, 12.0, 28.0
	plotW                  = chartW - padL - padR
	plotH                  = chartH - padT - padB
)

// niceMax rounds up to 1, 2 or 5 times a power of ten, for axis labels.
func niceMax(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func fmtNum(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.1fM", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1fk", v/1e3)
	case v == math.Trunc(v):
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f", v)
}

// SVG renders the chart.
func (c Chart) SVG() string {
	n := len(c.Times)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" id="%s" viewBox="0 0 %.0f %.0f" role="img" aria-label="%s" xmlns="http://www.w3.org/2000/svg">`,
		html.EscapeString(c.ID), chartW, chartH, html.EscapeString(c.Title+". "+c.Summary))
	maxV := 0.0
	for i := 0; i < n; i++ {
		sum := 0.0
		for _, s := range c.Series {
			if i < len(s.Values) {
				if math.IsNaN(s.Values[i]) {
					continue
				}
				if c.Stacked {
					sum += s.Values[i]
				} else {
					sum = math.Max(sum, s.Values[i])
				}
			}
		}
		maxV = math.Max(maxV, sum)
	}
	top := niceMax(maxV)
	// Grid and y labels.
	for i := 0; i <= 4; i++ {
		y := padT + plotH - plotH*float64(i)/4
		fmt.Fprintf(&b, `<line class="grid" x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f"/>`, padL, chartW-padR, y, y)
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padL-8, y+5,
			fmtNum(top*float64(i)/4))
	}
	if n == 0 {
		b.WriteString(`</svg>`)
		return b.String()
	}
	step := plotW / float64(n)
	x := func(i int) float64 { return padL + step*float64(i) }
	y := func(v float64) float64 { return padT + plotH - plotH*v/top }
	// X labels: about six, at even spacing.
	every := int(math.Max(1, math.Ceil(float64(n)/5)))
	span := c.Times[n-1].Sub(c.Times[0])
	for i := every / 2; i < n; i += every {
		layout := "15:04"
		if span >= 48*time.Hour {
			layout = "2 Jan"
		}
		fmt.Fprintf(&b, `<text class="axis" x="%.1f" y="%.1f" text-anchor="middle">%s</text>`,
			x(i)+step/2, chartH-10, c.Times[i].UTC().Format(layout))
	}
	if c.Stacked {
		bw := math.Max(1, step*0.7)
		for i := 0; i < n; i++ {
			base := 0.0
			for _, s := range c.Series {
				v := 0.0
				if i < len(s.Values) {
					v = s.Values[i]
				}
				if v <= 0 {
					continue
				}
				y0, y1 := y(base), y(base+v)
				fmt.Fprintf(&b, `<rect class="%s" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s %s: %s</title></rect>`,
					s.Class, x(i)+(step-bw)/2, y1, bw, math.Max(0.5, y0-y1),
					c.Times[i].UTC().Format("2 Jan 15:04"), html.EscapeString(s.Name), fmtNum(v))
				base += v
			}
		}
	} else {
		// NaN values (empty buckets) break the line instead of dropping it to zero.
		for _, s := range c.Series {
			var pts []string
			flush := func() {
				switch len(pts) {
				case 0:
				case 1:
					xy := strings.Split(pts[0], ",")
					fmt.Fprintf(&b, `<circle class="dot %s" cx="%s" cy="%s" r="3"/>`, s.Class, xy[0], xy[1])
				default:
					fmt.Fprintf(&b, `<polyline class="line %s" points="%s"/>`, s.Class, strings.Join(pts, " "))
				}
				pts = pts[:0]
			}
			for i := 0; i < n && i < len(s.Values); i++ {
				if math.IsNaN(s.Values[i]) {
					flush()
					continue
				}
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(i)+step/2, y(s.Values[i])))
			}
			flush()
		}
	}
	b.WriteString(`</svg>`)
	return b.String()
}
