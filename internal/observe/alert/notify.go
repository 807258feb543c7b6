package alert

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/confluxcdp/conflux/internal/config"
)

// pending is one notification waiting to be sent.
type pending struct {
	id       int64
	alertID  string
	status   string
	occurred int64
	body     []byte
}

// maxParallel bounds how many rules' notifications are sent at once.
const maxParallel = 8

// notify sends the pending notifications of every rule in ws, each rule's
// in order, rules in parallel.
func (e *Evaluator) notify(ctx context.Context, ws *config.Workspace, now time.Time) error {
	// Every pending event, also those not due: a rule's notifications go
	// in order, and the lease in sendAll stops at the first one that is
	// not due (or is leased by another node), and so before every later one.
	rows, err := e.db.SQL().QueryContext(ctx, e.db.Rebind(`SELECT id, alert_id, status, occurred_at, body FROM alert_events
WHERE notify_status = 'pending' ORDER BY id`))
	if err != nil {
		return fmt.Errorf("reading pending alert notifications: %w", err)
	}
	byAlert := make(map[string][]pending)
	var order []string
	for rows.Next() {
		var p pending
		var body string
		if err := rows.Scan(&p.id, &p.alertID, &p.status, &p.occurred, &body); err != nil {
			rows.Close()
			return fmt.Errorf("reading pending alert notifications: %w", err)
		}
		p.body = []byte(body)
		if _, ok := byAlert[p.alertID]; !ok {
			order = append(order, p.alertID)
		}
		byAlert[p.alertID] = append(byAlert[p.alertID], p)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("reading pending alert notifications: %w", err)
	}
	rules := make(map[string]*config.Alert, len(ws.Alerts))
	for i := range ws.Alerts {
		rules[ws.Alerts[i].ID] = &ws.Alerts[i]
	}
	var g errgroup.Group
	g.SetLimit(maxParallel)
	for _, id := range order {
		r, ok := rules[id]
		if !ok {
			continue // deleted (forget abandons them), or not in this snapshot yet
		}
		g.Go(func() error { return e.sendAll(ctx, r, byAlert[id], now) })
	}
	return g.Wait()
}

// sendAll sends one rule's pending notifications in order, stopping at
// the first that fails so that a receiver never sees them out of order.
func (e *Evaluator) sendAll(ctx context.Context, r *config.Alert, list []pending, now time.Time) error {
	// Bookkeeping outlives a cancelled ctx, so that a notification is not
	// left leased (and delayed) by a shutdown.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	for _, p := range list {
		if now.Sub(time.UnixMilli(p.occurred)) > e.opts.GiveUpAfter {
			if _, err := e.db.SQL().ExecContext(bctx, e.db.Rebind(`UPDATE alert_events SET notify_status = 'failed', last_error = ?
WHERE id = ? AND notify_status = 'pending'`), fmt.Sprintf("not sent within %s", config.Duration(e.opts.GiveUpAfter)), p.id); err != nil {
				return fmt.Errorf("abandoning alert notification %d: %w", p.id, err)
			}
			e.opts.Logger.Warn("alert notification abandoned: not sent in time", "alert_id", r.ID, "event_id", p.id, "status", p.status)
			continue
		}
		res, err := e.db.SQL().ExecContext(bctx, e.db.Rebind(`UPDATE alert_events SET next_attempt_at = ?
WHERE id = ? AND notify_status = 'pending' AND next_attempt_at <= ?`), now.Add(lease).UnixMilli(), p.id, now.UnixMilli())
		if err != nil {
			return fmt.Errorf("leasing alert notification %d: %w", p.id, err)
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return err // another node is sending it, and the ones after it
		}
		attempts, sendErr := e.send(ctx, r.Notify, p)
		if sendErr == nil {
			if _, err := e.db.SQL().ExecContext(bctx, e.db.Rebind(`UPDATE alert_events SET notify_status = 'sent', sent_at = ?, attempts = attempts + ?, last_error = ''
WHERE id = ?`), e.opts.Now().UnixMilli(), attempts, p.id); err != nil {
				return fmt.Errorf("recording alert notification %d as sent: %w", p.id, err)
			}
			continue
		}
		if _, err := e.db.SQL().ExecContext(bctx, e.db.Rebind(`UPDATE alert_events SET attempts = attempts + ?, last_error = ?, next_attempt_at = 0
WHERE id = ?`), attempts, sendErr.Error(), p.id); err != nil {
			return fmt.Errorf("recording alert notification %d as failed: %w", p.id, err)
		}
		if ctx.Err() == nil {
			e.opts.Logger.Warn("alert notification failed; it is retried at the next evaluation",
				"alert_id", r.ID, "event_id", p.id, "status", p.status, "attempts", attempts, "err", sendErr)
		}
		return nil
	}
	return nil
}

// send POSTs p to the webhook, up to Attempts times with a doubling
// backoff, and returns how many attempts it made. A 4xx other than 408
// and 429 is not retried before the next evaluation. Errors never name
// the URL, which may hold a secret.
func (e *Evaluator) send(ctx context.Context, n config.AlertNotify, p pending) (int, error) {
	var last error
	wait := e.opts.Backoff
	for attempt := 1; attempt <= e.opts.Attempts; attempt++ {
		if attempt > 1 {
			t := time.NewTimer(wait)
			select {
			case <-ctx.Done():
				t.Stop()
				return attempt - 1, fmt.Errorf("%w (after: %v)", ctx.Err(), last)
			case <-t.C:
			}
			wait *= 2
		}
		code, err := e.post(ctx, n, p)
		switch {
		case err != nil:
			last = err
		case code >= 200 && code < 300:
			return attempt, nil
		default:
			last = fmt.Errorf("the webhook answered %d %s", code, http.StatusText(code))
			if code >= 400 && code < 500 && code != http.StatusRequestTimeout && code != http.StatusTooManyRequests {
				return attempt, last
			}
		}
	}
	return e.opts.Attempts, last
}

// post makes one request and returns the response's status code.
func (e *Evaluator) post(ctx context.Context, n config.AlertNotify, p pending) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL, bytes.NewReader(p.body))
	if err != nil {
		return 0, errors.New("the notification URL cannot be requested")
	}
	for k, v := range n.Headers {
		req.Header.Set(k, v)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "conflux-alerts")
	// The same for every attempt, so that a receiver can drop a repeat.
	req.Header.Set("Idempotency-Key", "conflux-alert-event-"+strconv.FormatInt(p.id, 10))
	resp, err := e.opts.Client.Do(req)
	if err != nil {
		if ue, ok := errors.AsType[*url.Error](err); ok {
			err = ue.Err
		}
		return 0, fmt.Errorf("sending the notification: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return resp.StatusCode, nil
}
