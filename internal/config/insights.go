package config

import (
	"math"
	"strconv"
	"time"

	"gopkg.in/yaml.v3"
)

// Insights configures the Insights detector (docs/insights.md).
//
//	insights:
//	  live: trails          # trails (default) | all | off
//	  lateness: 15m
//	  warm_up: 24h
//	  ratio: 1.5
//	  z: 4
//	  min_count: 10
//	  start_minutes: 3
//	  end_minutes: 5
//	  max_series: 10000
//	  max_runs: 2           # runs of `cairn insights --endpoint-url` going at once
//	  decreases:
//	    window_minutes: 30
//	    ratio: 0.2
//	    min_expected: 60
//	    series:
//	      - {event_source: s3.amazonaws.com, event_name: PutObject}
type Insights struct {
	// Live says which Insights the server stores as it runs: "trails"
	// those enabled by trails' insight selectors, "all" every type for
	// every account and region, "off" none.
	Live         string        `yaml:"live"`
	Lateness     time.Duration `yaml:"lateness"`
	WarmUp       time.Duration `yaml:"warm_up"`
	Ratio        float64       `yaml:"ratio"`
	Z            float64       `yaml:"z"`
	MinCount     int           `yaml:"min_count"`
	StartMinutes int           `yaml:"start_minutes"`
	EndMinutes   int           `yaml:"end_minutes"`
	MaxSeries    int           `yaml:"max_series"`
	// MaxRuns bounds the runs of the detector over the stored history
	// (`cairn insights --endpoint-url`) going at once, all accounts
	// together; each holds about 100 bytes per record of its account
	// and region.
	MaxRuns   int       `yaml:"max_runs"`
	Decreases Decreases `yaml:"decreases"`
}

// Decreases configures which series' drops are Insights and how a drop is
// judged.
type Decreases struct {
	WindowMinutes int           `yaml:"window_minutes"`
	Ratio         float64       `yaml:"ratio"`
	MinExpected   float64       `yaml:"min_expected"`
	Series        []SeriesMatch `yaml:"series"`
}

// SeriesMatch selects series; an empty field matches any.
type SeriesMatch struct {
	EventSource string `yaml:"event_source"`
	EventName   string `yaml:"event_name"`
}

// DefaultInsights are the defaults (the same as insights.DefaultParams).
func DefaultInsights() Insights {
	return Insights{Live: "trails", Lateness: 15 * time.Minute, WarmUp: 24 * time.Hour, Ratio: 1.5, Z: 4, MinCount: 10,
		StartMinutes: 3, EndMinutes: 5, MaxSeries: 10000, MaxRuns: 2,
		Decreases: Decreases{WindowMinutes: 30, Ratio: 0.2, MinExpected: 60}}
}

func (d *decoder) insights(n *yaml.Node, path string, in *Insights) {
	d.mapping(n, path,
		field{"live", false, func(v *yaml.Node, path string) {
			if s, ok := d.str(v, path); ok {
				if s != "trails" && s != "all" && s != "off" {
					d.failf(v, path, "want trails, all or off, got %s", quote(s))
				}
				in.Live = s
			}
		}},
		field{"lateness", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 0, 24*time.Hour); ok {
				in.Lateness = t
			}
		}},
		field{"warm_up", false, func(v *yaml.Node, path string) {
			if t, ok := d.duration(v, path, 0, 7*24*time.Hour); ok {
				in.WarmUp = t
			}
		}},
		field{"ratio", false, func(v *yaml.Node, path string) {
			if f, ok := d.float(v, path, 1, 1000); ok {
				in.Ratio = f
			}
		}},
		field{"z", false, func(v *yaml.Node, path string) {
			if f, ok := d.float(v, path, 0, 100); ok {
				in.Z = f
			}
		}},
		field{"min_count", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 1000000, "calls a minute", "the least count that can be unusual"); ok {
				in.MinCount = i
			}
		}},
		field{"start_minutes", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 60, "minutes", "unusual minutes in a row that start an Insight"); ok {
				in.StartMinutes = i
			}
		}},
		field{"end_minutes", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 60, "minutes", "usual minutes in a row that end an Insight"); ok {
				in.EndMinutes = i
			}
		}},
		field{"max_series", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 10000000, "series", "per account and region"); ok {
				in.MaxSeries = i
			}
		}},
		field{"max_runs", false, func(v *yaml.Node, path string) {
			if i, ok := d.integer(v, path, 1, 64, "runs", "runs of the detector over the stored history going at once"); ok {
				in.MaxRuns = i
			}
		}},
		field{"decreases", false, func(v *yaml.Node, path string) {
			dc := &in.Decreases
			d.mapping(v, path,
				field{"window_minutes", false, func(v *yaml.Node, path string) {
					if i, ok := d.integer(v, path, 1, 60, "minutes", "the span a drop is judged over"); ok {
						dc.WindowMinutes = i
					}
				}},
				field{"ratio", false, func(v *yaml.Node, path string) {
					if f, ok := d.float(v, path, 0.001, 0.999); ok {
						dc.Ratio = f
					}
				}},
				field{"min_expected", false, func(v *yaml.Node, path string) {
					if f, ok := d.float(v, path, 1, 1e9); ok {
						dc.MinExpected = f
					}
				}},
				field{"series", false, func(v *yaml.Node, path string) {
					dc.Series = list(d, v, path, func(n *yaml.Node, path string) SeriesMatch {
						var m SeriesMatch
						d.mapping(n, path,
							field{"event_source", false, func(v *yaml.Node, path string) { m.EventSource, _ = d.str(v, path) }},
							field{"event_name", false, func(v *yaml.Node, path string) { m.EventName, _ = d.str(v, path) }},
						)
						return m
					})
				}},
			)
		}},
	)
}

// float decodes a YAML number in [lo, hi].
func (d *decoder) float(n *yaml.Node, path string, lo, hi float64) (float64, bool) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!int" || n.ShortTag() == "!!float") {
		if f, err := strconv.ParseFloat(n.Value, 64); err == nil && !math.IsNaN(f) && f >= lo && f <= hi {
			return f, true
		}
	}
	if n.Kind != yaml.ScalarNode {
		d.wrongKind(n, path, "a number")
		return 0, false
	}
	d.failf(n, path, "want a number from %g to %g, got %s", lo, hi, quote(n.Value))
	return 0, false
}
