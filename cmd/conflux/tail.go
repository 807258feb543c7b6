package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
)

func tail(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flagSet("tail", stderr)
	source := fs.String("source", "", "source id to follow (required)")
	addr := fs.String("addr", env("CONFLUX_ADDR", "127.0.0.1:8088"), "server address, host:port or URL (env CONFLUX_ADDR)")
	token := fs.String("token", env("CONFLUX_ADMIN_TOKEN", ""), "admin token (env CONFLUX_ADMIN_TOKEN)")
	n := fs.Int("n", 10, "recent events to print before following")
	raw := fs.Bool("json", false, "print each event as one line of JSON instead of a summary")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *source == "" {
		fmt.Fprintln(stderr, "conflux tail: -source is required")
		return errUsage
	}
	base := withScheme(*addr)
	u := fmt.Sprintf("%s/api/v1/sources/%s/events?follow=true&limit=%d", strings.TrimRight(base, "/"), url.PathEscape(*source), *n)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+*token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("connecting to %s: %w", base, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if *raw {
			fmt.Fprintf(stdout, "%s\n", line)
			continue
		}
		fmt.Fprintln(stdout, summarize(line))
	}
	if err := sc.Err(); err != nil && ctx.Err() == nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("reading events: %w", err)
	}
	return nil
}

// summarize renders one event as "receivedAt type name user messageId".
func summarize(line []byte) string {
	var e struct {
		Type        string `json:"type"`
		Event       string `json:"event"`
		Name        string `json:"name"`
		UserID      string `json:"userId"`
		AnonymousID string `json:"anonymousId"`
		GroupID     string `json:"groupId"`
		PreviousID  string `json:"previousId"`
		MessageID   string `json:"messageId"`
		ReceivedAt  string `json:"receivedAt"`
	}
	if err := json.Unmarshal(line, &e); err != nil {
		return string(line)
	}
	what := e.Event
	switch e.Type {
	case "page", "screen":
		what = e.Name
	case "group":
		what = "group=" + e.GroupID
	case "alias":
		what = "previousId=" + e.PreviousID
	}
	who := "userId=" + e.UserID
	if e.UserID == "" {
		who = "anonymousId=" + e.AnonymousID
	}
	return fmt.Sprintf("%s  %-8s %-24q %s  messageId=%s", e.ReceivedAt, e.Type, what, who, e.MessageID)
}
