package load

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// WriteText prints r for people.
func (r *Result) WriteText(w io.Writer) error {
	var b strings.Builder
	what := r.Protocol + " protocol"
	if r.Mech != "" {
		what += ", " + r.Mech
	}
	opts := ""
	if r.NoPenalty {
		opts = ", no-penalty"
	}
	fmt.Fprintf(&b, "target      %s (%s)\n", r.Target, what)
	if r.Rate > 0 {
		fmt.Fprintf(&b, "load        open loop, %.1f requests/s over %d connections (at most %d in flight on each), %d users, %.0f%% wrong%s\n",
			r.Rate, r.Conns, r.Depth, r.Users, r.WrongShare*100, opts)
	} else {
		fmt.Fprintf(&b, "load        %d connections × %d in flight, %d users, %.0f%% wrong%s\n",
			r.Conns, r.Depth, r.Users, r.WrongShare*100, opts)
	}
	if wa := r.WarmAll; wa != nil {
		fmt.Fprintf(&b, "warm-all    %d requests in %.2f s (ok %d, fail %d, tempfail %d, errors %d, unanswered %d)\n",
			wa.Total(), wa.Seconds, wa.OK, wa.Fail, wa.TempFail, wa.Errors, wa.Unanswered)
	}
	fmt.Fprintf(&b, "window      %.2f s after %.2f s warm-up (%d warm-up requests)\n",
		r.Seconds, r.WarmupSeconds, r.Warmup.Total())
	fmt.Fprintf(&b, "requests    %d: ok %d, fail %d, tempfail %d, errors %d\n",
		r.Requests, r.OK, r.Fail, r.TempFail, r.Errors)
	fmt.Fprintf(&b, "expected    %d meant to fail; %d unexpected outcomes", r.WrongSent, r.Unexpected)
	if r.Unexpected > 0 {
		fmt.Fprintf(&b, " (%d OK for a wrong password, %d FAIL for a right one)", r.WrongOK, r.RightFail)
	}
	b.WriteString("\n")
	if r.Late.Total() > 0 {
		fmt.Fprintf(&b, "after       %d completed after the window (not counted), %d unanswered\n",
			r.Late.Total()-r.Late.Unanswered, r.Late.Unanswered)
	}
	fmt.Fprintf(&b, "rate        %.1f requests/s\n", r.RPS)
	l := r.Latency
	fmt.Fprintf(&b, "latency     p50 %s  p90 %s  p99 %s  p99.9 %s  max %s  mean %s\n",
		FormatMS(l.P50), FormatMS(l.P90), FormatMS(l.P99), FormatMS(l.P999), FormatMS(l.Max), FormatMS(l.Mean))
	if sl := r.SendLag; sl != nil {
		fmt.Fprintf(&b, "send lag    p50 %s  p99 %s  max %s (how late the generator wrote requests; part of the latency above)\n",
			FormatMS(sl.P50), FormatMS(sl.P99), FormatMS(sl.Max))
	}
	if r.Unsent > 0 {
		fmt.Fprintf(&b, "unsent      %d requests of the window not sent: their connection already had %d in flight\n", r.Unsent, r.Depth)
	}
	for _, e := range r.ErrorSamples {
		fmt.Fprintf(&b, "error       %s\n", e)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// WriteJSON prints r as one indented JSON object.
func (r *Result) WriteJSON(w io.Writer) error { return writeJSON(w, r) }

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// FormatMS formats milliseconds with three significant-ish digits, as the
// reports print latencies ("0.85 ms", "12.3 ms", "171 ms").
func FormatMS(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f ms", v)
	case v >= 10:
		return fmt.Sprintf("%.1f ms", v)
	default:
		return fmt.Sprintf("%.2f ms", v)
	}
}
