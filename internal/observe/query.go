package observe

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Window is what a delivery-metrics query asks for.
type Window struct {
	Source      string
	Destination string
	Granularity string
	Start, End  time.Time
}

// Segment's allowed windows (spec §12): how far back a granularity's
// start may be, how long its range, and its default range.
var windows = map[string]struct{ back, span, def time.Duration }{
	Minute: {48 * time.Hour, 4 * time.Hour, time.Hour},
	Hour:   {30 * 24 * time.Hour, 14 * 24 * time.Hour, 7 * 24 * time.Hour},
	Day:    {30 * 24 * time.Hour, 30 * 24 * time.Hour, 30 * 24 * time.Hour},
}

// Resolve fills a window's defaults (granularity MINUTE, end now, start
// the granularity's default range before end), aligns it to buckets, and
// checks it against the allowed windows.
func (w *Window) Resolve(now time.Time) error {
	if w.Granularity == "" {
		w.Granularity = Minute
	}
	lim, ok := windows[w.Granularity]
	if !ok {
		return fmt.Errorf("granularity %q: want MINUTE, HOUR or DAY", w.Granularity)
	}
	if w.End.IsZero() {
		w.End = now
	}
	if w.Start.IsZero() {
		w.Start = w.End.Add(-lim.def)
	}
	if w.End.Sub(w.Start) > lim.span {
		return fmt.Errorf("%s granularity allows a range of at most %s; this one is %s", w.Granularity, lim.span, w.End.Sub(w.Start))
	}
	w.Start = time.UnixMilli(bucketStart(w.Granularity, minuteOf(w.Start))).UTC()
	if e := time.UnixMilli(bucketStart(w.Granularity, minuteOf(w.End))).UTC(); e.Before(w.End) {
		w.End = e.Add(step(w.Granularity))
	}
	switch {
	case !w.Start.Before(w.End):
		return fmt.Errorf("start %s is not before end %s", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))
	case w.End.Sub(w.Start) > lim.span+step(w.Granularity): // aligning may add a bucket
		return fmt.Errorf("%s granularity allows a range of at most %s; this one is %s", w.Granularity, lim.span, w.End.Sub(w.Start))
	case w.Start.Before(now.Add(-lim.back - step(w.Granularity))):
		return fmt.Errorf("%s granularity allows a start at most %s ago", w.Granularity, lim.back)
	}
	return nil
}

func step(g string) time.Duration {
	switch g {
	case Hour:
		return time.Hour
	case Day:
		return 24 * time.Hour
	}
	return time.Minute
}

// Point is one bucket of a series.
type Point struct {
	Time  time.Time `json:"time"`
	Count int64     `json:"count"`
}

// Breakdown is a metric's total for one reason.
type Breakdown struct {
	Reason string `json:"reason"`
	Total  int64  `json:"total"`
}

// Metric is one outcome over a window.
type Metric struct {
	Name      string      `json:"metric_name"`
	Total     int64       `json:"total"`
	Breakdown []Breakdown `json:"breakdown"`
	Series    []Point     `json:"series"`
}

// LatencyPoint is one bucket's latency percentiles, in milliseconds,
// estimated from the histogram (linear within a bucket).
type LatencyPoint struct {
	Time  time.Time `json:"time"`
	Count int64     `json:"count"`
	P50   float64   `json:"p50_ms"`
	P95   float64   `json:"p95_ms"`
	P99   float64   `json:"p99_ms"`
}

// Result is a delivery-metrics answer.
type Result struct {
	Source      string         `json:"source_id,omitempty"`
	Destination string         `json:"destination_id,omitempty"`
	Granularity string         `json:"granularity"`
	Start       time.Time      `json:"start"`
	End         time.Time      `json:"end"`
	Metrics     []Metric       `json:"metrics"`
	Latency     []LatencyPoint `json:"latency"`
	// Latency over the whole window.
	P50 float64 `json:"p50_ms"`
	P95 float64 `json:"p95_ms"`
	P99 float64 `json:"p99_ms"`
}

// metricNames maps outcomes to Segment's metric names, in answer order.
var metricNames = []struct{ outcome, name string }{
	{Delivered, "successes"}, {Discarded, "discarded"}, {Retried, "retried"}, {Expired, "expired"},
}

func (w *Window) where() (string, []any) {
	conds := []string{"granularity = ?", "bucket >= ?", "bucket < ?"}
	args := []any{w.Granularity, w.Start.UnixMilli(), w.End.UnixMilli()}
	if w.Destination != "" {
		conds = append(conds, "destination_id = ?")
		args = append(args, w.Destination)
	} else {
		conds = append(conds, "destination_id = ?")
		args = append(args, AllDestinations)
	}
	if w.Source != "" {
		conds = append(conds, "source_id = ?")
		args = append(args, w.Source)
	}
	return " WHERE " + strings.Join(conds, " AND "), args
}

// Query answers a resolved window: totals, breakdowns by reason and a
// series per metric (every bucket, zeros included), and latency
// percentiles per bucket and over the window.
func (r *Recorder) Query(ctx context.Context, w Window) (*Result, error) {
	res := &Result{Source: w.Source, Destination: w.Destination, Granularity: w.Granularity, Start: w.Start, End: w.End}
	n := int(w.End.Sub(w.Start) / step(w.Granularity))
	index := func(bucket int64) int { return int(time.UnixMilli(bucket).Sub(w.Start) / step(w.Granularity)) }
	where, args := w.where()
	rows, err := r.db.SQL().QueryContext(ctx, r.db.Rebind(`SELECT bucket, outcome, reason, SUM(count) FROM delivery_metrics`+where+
		` GROUP BY bucket, outcome, reason`), args...)
	if err != nil {
		return nil, fmt.Errorf("reading delivery metrics: %w", err)
	}
	byOutcome := make(map[string]*Metric)
	reasons := make(map[string]map[string]int64)
	for _, m := range metricNames {
		met := &Metric{Name: m.name, Breakdown: []Breakdown{}, Series: make([]Point, n)}
		for i := range met.Series {
			met.Series[i].Time = w.Start.Add(time.Duration(i) * step(w.Granularity))
		}
		byOutcome[m.outcome] = met
		reasons[m.outcome] = make(map[string]int64)
	}
	for rows.Next() {
		var bucket, count int64
		var outcome, reason string
		if err := rows.Scan(&bucket, &outcome, &reason, &count); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading delivery metrics: %w", err)
		}
		met, ok := byOutcome[outcome]
		if !ok {
			continue
		}
		met.Total += count
		if i := index(bucket); i >= 0 && i < n {
			met.Series[i].Count += count
		}
		if reason != "" {
			reasons[outcome][reason] += count
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading delivery metrics: %w", err)
	}
	for _, m := range metricNames {
		met := byOutcome[m.outcome]
		for reason, total := range reasons[m.outcome] {
			met.Breakdown = append(met.Breakdown, Breakdown{Reason: reason, Total: total})
		}
		sortBreakdown(met.Breakdown)
		res.Metrics = append(res.Metrics, *met)
	}

	lrows, err := r.db.SQL().QueryContext(ctx, r.db.Rebind(`SELECT bucket, le, SUM(count) FROM delivery_latency`+where+` GROUP BY bucket, le`), args...)
	if err != nil {
		return nil, fmt.Errorf("reading delivery latency: %w", err)
	}
	hists := make([][len(LatencyBounds) + 1]int64, n)
	var all [len(LatencyBounds) + 1]int64
	for lrows.Next() {
		var bucket, count int64
		var le int
		if err := lrows.Scan(&bucket, &le, &count); err != nil {
			lrows.Close()
			return nil, fmt.Errorf("reading delivery latency: %w", err)
		}
		if i := index(bucket); i >= 0 && i < n && le >= 0 && le < len(all) {
			hists[i][le] += count
			all[le] += count
		}
	}
	lrows.Close()
	if err := lrows.Err(); err != nil {
		return nil, fmt.Errorf("reading delivery latency: %w", err)
	}
	res.Latency = make([]LatencyPoint, n)
	for i := range hists {
		p := LatencyPoint{Time: w.Start.Add(time.Duration(i) * step(w.Granularity))}
		p.Count, p.P50, p.P95, p.P99 = percentiles(&hists[i])
		res.Latency[i] = p
	}
	_, res.P50, res.P95, res.P99 = percentiles(&all)
	return res, nil
}

// sortBreakdown orders reasons by total, largest first, then by name.
func sortBreakdown(b []Breakdown) {
	slices.SortFunc(b, func(x, y Breakdown) int {
		return cmp.Or(cmp.Compare(y.Total, x.Total), strings.Compare(x.Reason, y.Reason))
	})
}

// percentiles estimates p50, p95 and p99 from a histogram: the bucket
// holding the rank, interpolated linearly between its bounds (the last,
// unbounded bucket reports its lower bound).
func percentiles(h *[len(LatencyBounds) + 1]int64) (count int64, p50, p95, p99 float64) {
	for _, c := range h {
		count += c
	}
	if count == 0 {
		return 0, 0, 0, 0
	}
	q := func(p float64) float64 {
		rank := p * float64(count)
		var seen float64
		for i, c := range h {
			if c == 0 {
				continue
			}
			if seen+float64(c) >= rank {
				lo := 0.0
				if i > 0 {
					lo = float64(LatencyBounds[i-1])
				}
				if i == len(LatencyBounds) {
					return lo
				}
				hi := float64(LatencyBounds[i])
				return lo + (hi-lo)*(rank-seen)/float64(c)
			}
			seen += float64(c)
		}
		return float64(LatencyBounds[len(LatencyBounds)-1])
	}
	return count, q(0.50), q(0.95), q(0.99)
}

// Retention of each granularity's rows: a little past what the API
// allows to ask for.
var Retention = map[string]time.Duration{Minute: 49 * time.Hour, Hour: 31 * 24 * time.Hour, Day: 400 * 24 * time.Hour}

// Expire deletes rows past their granularity's retention.
func (r *Recorder) Expire(ctx context.Context, now time.Time) error {
	for g, keep := range Retention {
		cut := now.Add(-keep).UnixMilli()
		for _, table := range []string{"delivery_metrics", "delivery_latency"} {
			if _, err := r.db.SQL().ExecContext(ctx, r.db.Rebind(`DELETE FROM `+table+` WHERE granularity = ? AND bucket < ?`), g, cut); err != nil {
				return fmt.Errorf("expiring %s rows of %s: %w", g, table, err)
			}
		}
	}
	return nil
}

// Stage is one step of the delivery overview's funnel: an outcome's total
// and its breakdown by reason.
type Stage struct {
	Outcome   string      `json:"outcome"`
	Total     int64       `json:"total"`
	Breakdown []Breakdown `json:"breakdown"`
}

// DestinationFunnel is what happened to a source's events at one
// destination.
type DestinationFunnel struct {
	Destination string  `json:"destination_id"`
	Stages      []Stage `json:"stages"`
}

// Overview is Segment's delivery overview for a source: how many events
// were received, what the stages before delivery removed and why, and,
// per destination, what was filtered, delivered, retried, discarded and
// expired.
type Overview struct {
	Source       string              `json:"source_id"`
	Granularity  string              `json:"granularity"`
	Start        time.Time           `json:"start"`
	End          time.Time           `json:"end"`
	Stages       []Stage             `json:"stages"`
	Destinations []DestinationFunnel `json:"destinations"`
}

// Funnel order of the stages before delivery and at a destination.
var (
	sourceStages      = []string{Received, Rejected, Suppressed, Duplicate, Blocked}
	destinationStages = []string{Filtered, Delivered, Retried, Discarded, Expired}
)

// Overview answers a resolved window for w.Source (and, if set, only
// w.Destination).
func (r *Recorder) Overview(ctx context.Context, w Window) (*Overview, error) {
	conds := []string{"granularity = ?", "bucket >= ?", "bucket < ?", "destination_id <> ?"}
	args := []any{w.Granularity, w.Start.UnixMilli(), w.End.UnixMilli(), AllDestinations}
	if w.Source != "" {
		conds = append(conds, "source_id = ?")
		args = append(args, w.Source)
	}
	if w.Destination != "" {
		conds = append(conds, "destination_id IN ('', ?)")
		args = append(args, w.Destination)
	}
	rows, err := r.db.SQL().QueryContext(ctx, r.db.Rebind(`SELECT destination_id, outcome, reason, SUM(count) FROM delivery_metrics WHERE `+
		strings.Join(conds, " AND ")+` GROUP BY destination_id, outcome, reason`), args...)
	if err != nil {
		return nil, fmt.Errorf("reading the delivery overview: %w", err)
	}
	defer rows.Close()
	type cell struct{ dest, outcome string }
	totals := make(map[cell]int64)
	reasons := make(map[cell]map[string]int64)
	dests := map[string]bool{}
	for rows.Next() {
		var dest, outcome, reason string
		var n int64
		if err := rows.Scan(&dest, &outcome, &reason, &n); err != nil {
			return nil, fmt.Errorf("reading the delivery overview: %w", err)
		}
		c := cell{dest, outcome}
		totals[c] += n
		if reason != "" {
			if reasons[c] == nil {
				reasons[c] = make(map[string]int64)
			}
			reasons[c][reason] += n
		}
		if dest != "" {
			dests[dest] = true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the delivery overview: %w", err)
	}
	stages := func(dest string, outcomes []string) []Stage {
		out := make([]Stage, 0, len(outcomes))
		for _, o := range outcomes {
			st := Stage{Outcome: o, Total: totals[cell{dest, o}], Breakdown: []Breakdown{}}
			for reason, n := range reasons[cell{dest, o}] {
				st.Breakdown = append(st.Breakdown, Breakdown{Reason: reason, Total: n})
			}
			sortBreakdown(st.Breakdown)
			out = append(out, st)
		}
		return out
	}
	ov := &Overview{Source: w.Source, Granularity: w.Granularity, Start: w.Start, End: w.End,
		Stages: stages("", sourceStages), Destinations: []DestinationFunnel{}}
	if w.Destination != "" {
		dests[w.Destination] = true
	}
	names := make([]string, 0, len(dests))
	for d := range dests {
		names = append(names, d)
	}
	slices.Sort(names)
	for _, d := range names {
		ov.Destinations = append(ov.Destinations, DestinationFunnel{Destination: d, Stages: stages(d, destinationStages)})
	}
	return ov, nil
}
