package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// replay puts dead-lettered events back into their destinations' queues
// through the delivery API, a page at a time, and then follows their
// delivery, drawing a progress bar for each phase.
func replay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("replay", stderr)
	addr := fs.String("addr", env("CONFLUX_ADDR", "127.0.0.1:8088"), "server address, host:port or URL (env CONFLUX_ADDR)")
	token := fs.String("token", env("CONFLUX_ADMIN_TOKEN", ""), "admin token (env CONFLUX_ADMIN_TOKEN)")
	dest := fs.String("destination", "", "replay only this destination's dead letters")
	reason := fs.String("reason", "", "replay only discarded or expired ones")
	from := fs.String("from", "", "replay only those that failed at or after this RFC 3339 time")
	to := fs.String("to", "", "replay only those that failed before this RFC 3339 time")
	messageID := fs.String("message-id", "", "replay only this event")
	page := fs.Int("page", 1000, "dead letters moved per request")
	wait := fs.Bool("wait", true, "after moving them, follow their delivery until none is pending")
	fromArchive := fs.Bool("archive", false, "replay from the event archive instead: the events received in [-from, -to) to -destination, beyond the log's retention")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	c := &apiClient{base: strings.TrimRight(withScheme(*addr), "/"), token: *token}
	if *fromArchive {
		var out struct {
			ReplayID string `json:"replay_id"`
			Moved    int64  `json:"moved"`
		}
		if err := c.do(ctx, "POST", "/api/v1/archive/replay", map[string]any{"destination": *dest, "from": *from, "to": *to}, &out); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "replay %s: %d archived events in %s's queue\n", out.ReplayID, out.Moved, *dest)
		if !*wait || out.Moved == 0 {
			return nil
		}
		return follow(ctx, c, out.ReplayID, out.Moved, stdout, stderr)
	}
	q := url.Values{"limit": {"1"}}
	for k, v := range map[string]string{"destination": *dest, "reason": *reason, "from": *from, "to": *to, "message_id": *messageID} {
		if v != "" {
			q.Set(k, v)
		}
	}
	var list struct {
		Total int64 `json:"total"`
	}
	if err := c.do(ctx, "GET", "/api/v1/dead-letters?"+q.Encode(), nil, &list); err != nil {
		return err
	}
	if list.Total == 0 {
		fmt.Fprintln(stdout, "no dead letters match")
		return nil
	}
	bar := newProgress(stderr, "requeued", list.Total)
	req := map[string]any{"destination": *dest, "reason": *reason, "from": *from, "to": *to, "message_id": *messageID, "limit": *page}
	var id string
	var moved int64
	for {
		var out struct {
			ReplayID  string `json:"replay_id"`
			Moved     int64  `json:"moved"`
			Remaining int64  `json:"remaining"`
		}
		if id != "" {
			req["replay_id"] = id
		}
		if err := c.do(ctx, "POST", "/api/v1/dead-letters/replay", req, &out); err != nil {
			return err
		}
		id, moved = out.ReplayID, moved+out.Moved
		bar.set(moved, "")
		if out.Moved == 0 || out.Remaining == 0 {
			break
		}
	}
	bar.done()
	fmt.Fprintf(stdout, "replay %s: %d events back in their queues\n", id, moved)
	if !*wait {
		return nil
	}
	return follow(ctx, c, id, moved, stdout, stderr)
}

// follow shows a replay's progress until none of its events is pending.
func follow(ctx context.Context, c *apiClient, id string, moved int64, stdout, stderr io.Writer) error {
	bar := newProgress(stderr, "finished", moved)
	for {
		var st struct {
			Moved, Pending, Failed, Delivered int64
		}
		if err := c.do(ctx, "GET", "/api/v1/replays/"+url.PathEscape(id), nil, &st); err != nil {
			return err
		}
		bar.set(st.Delivered+st.Failed, fmt.Sprintf("delivered %d, failed again %d, pending %d", st.Delivered, st.Failed, st.Pending))
		if st.Pending == 0 {
			bar.done()
			fmt.Fprintf(stdout, "replay %s: %d delivered, %d failed again (in the dead letters with replay_id %s)\n", id, st.Delivered, st.Failed, id)
			return nil
		}
		select {
		case <-ctx.Done():
			bar.done()
			return fmt.Errorf("stopped while %d were pending; follow with GET /api/v1/replays/%s", st.Pending, id)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func withScheme(addr string) string {
	if strings.Contains(addr, "://") {
		return addr
	}
	return "http://" + addr
}

// apiClient calls the admin APIs with the bearer token.
type apiClient struct {
	base, token string
}

func (c *apiClient) do(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, c.base+path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, strings.TrimSpace(string(raw)))
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	return nil
}

// progress draws a bar on a terminal (redrawn in place) or, on anything
// else, a line at most every two seconds.
type progress struct {
	w     io.Writer
	label string
	total int64
	tty   bool
	last  time.Time
	line  string
}

func newProgress(w io.Writer, label string, total int64) *progress {
	p := &progress{w: w, label: label, total: max(total, 1)}
	if f, ok := w.(*os.File); ok {
		if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
			p.tty = true
		}
	}
	return p
}

func (p *progress) set(n int64, note string) {
	const width = 30
	filled := int(min(n, p.total) * width / p.total)
	p.line = fmt.Sprintf("%s [%s%s] %d/%d %3d%%", p.label, strings.Repeat("=", filled), strings.Repeat(" ", width-filled),
		n, p.total, min(n, p.total)*100/p.total)
	if note != "" {
		p.line += "  " + note
	}
	switch {
	case p.tty:
		fmt.Fprintf(p.w, "\r\033[K%s", p.line)
	case time.Since(p.last) >= 2*time.Second:
		fmt.Fprintln(p.w, p.line)
		p.last = time.Now()
	}
}

func (p *progress) done() {
	if p.tty {
		fmt.Fprintln(p.w)
	} else if p.line != "" {
		fmt.Fprintln(p.w, p.line)
	}
}
