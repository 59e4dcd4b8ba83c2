package config

import (
	"strings"
	"testing"
	"time"
)

func TestInsights(t *testing.T) {
	const head = "accounts:\n  - id: \"111111111111\"\n    users:\n      - name: a\n        access_keys:\n          - {id: AKIAAAAAAAAAAAAAAAA1, secret: s}\n"
	d, err := Parse("c.yaml", []byte(head))
	if err != nil {
		t.Fatal(err)
	}
	if d.Insights.Live != "trails" || d.Insights.Lateness != 15*time.Minute || d.Insights.Ratio != 1.5 || d.Insights.Decreases.WindowMinutes != 30 {
		t.Errorf("defaults %+v", d.Insights)
	}
	c, err := Parse("c.yaml", []byte(head+"insights:\n  live: all\n  lateness: 5m\n  warm_up: 1h\n  ratio: 2\n  z: 3.5\n  min_count: 4\n"+
		"  start_minutes: 2\n  end_minutes: 10\n  max_series: 50\n  max_runs: 3\n  decreases:\n    window_minutes: 15\n    ratio: 0.1\n    min_expected: 20\n"+
		"    series:\n      - {event_source: s3.amazonaws.com, event_name: PutObject}\n      - event_source: ec2.amazonaws.com\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := c.Insights
	if in.Live != "all" || in.Lateness != 5*time.Minute || in.WarmUp != time.Hour || in.Ratio != 2 || in.Z != 3.5 || in.MinCount != 4 ||
		in.StartMinutes != 2 || in.EndMinutes != 10 || in.MaxSeries != 50 || in.MaxRuns != 3 || in.Decreases.WindowMinutes != 15 || in.Decreases.Ratio != 0.1 ||
		in.Decreases.MinExpected != 20 || len(in.Decreases.Series) != 2 || in.Decreases.Series[0].EventName != "PutObject" ||
		in.Decreases.Series[1].EventSource != "ec2.amazonaws.com" {
		t.Errorf("decoded %+v", in)
	}
	for _, c := range []struct{ yaml, want string }{
		{"insights:\n  live: sometimes\n", "c.yaml:8: insights.live: want trails, all or off, got \"sometimes\""},
		{"insights:\n  ratio: 0.5\n", "c.yaml:8: insights.ratio: want a number from 1 to 1000, got \"0.5\""},
		{"insights:\n  z: [1]\n", "insights.z: want a number"},
		{"insights:\n  ratio: .nan\n", "insights.ratio: want a number from 1 to 1000"},
		{"insights:\n  start_minutes: 0\n", "c.yaml:8: insights.start_minutes: want a whole number of minutes from 1 to 60"},
		{"insights:\n  lateness: 2d\n", "insights.lateness: want a duration"},
		{"insights:\n  decreases:\n    ratio: 1\n", "c.yaml:9: insights.decreases.ratio: want a number from 0.001 to 0.999"},
		{"insights:\n  decreases:\n    series:\n      - {event_sauce: x}\n", "insights.decreases.series[0].event_sauce"},
		{"insights:\n  max_runs: 0\n", "c.yaml:8: insights.max_runs: want a whole number of runs from 1 to 64"},
		{"insights:\n  treshold: 3\n", "c.yaml:8: insights.treshold"},
	} {
		_, err := Parse("c.yaml", []byte(head+c.yaml))
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%q: err = %v; want it to contain %q", c.yaml, err, c.want)
		}
	}
}
