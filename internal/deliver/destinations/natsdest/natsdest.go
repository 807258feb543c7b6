package natsdest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver"
	"github.com/confluxcdp/conflux/internal/deliver/settings"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// MaxBatch is the most events one Send publishes. It stays well below the
// JetStream client's limit of outstanding asynchronous publishes (4000),
// so that a few concurrent Sends do not stall each other.
const MaxBatch = 500

// The headers every message carries beside the event JSON.
const (
	// HeaderMsgID holds the event's messageId; JetStream deduplicates on it.
	HeaderMsgID = jetstream.MsgIDHeader
	// HeaderSource holds the event's source id.
	HeaderSource = "Conflux-Source"
	// HeaderType holds the event's Segment type.
	HeaderType = "Conflux-Type"
)

// Type is the "nats" destination type.
var Type = &deliver.Type{
	Name:         "nats",
	Integrations: []string{"NATS"},
	MaxBatch:     MaxBatch,
	New: func(ctx context.Context, cfg deliver.Config) (deliver.Destination, error) {
		return New(ctx, cfg)
	},
}

// Destination publishes events to one NATS subject scheme. It is safe for
// concurrent use.
type Destination struct {
	settings Settings
	subject  *subject
	servers  string
	opts     []nats.Option
	logger   *slog.Logger

	// connectErr holds the last failure to connect, which the client
	// reports through a callback, not through LastError, while it retries
	// a connection that never succeeded.
	connectErr atomic.Pointer[error]

	mu     sync.Mutex // guards the fields below
	nc     *nats.Conn
	js     jetstream.JetStream
	closed bool
}

// New checks cfg's settings and connects. A server that cannot be reached
// is not an error: the connection keeps retrying in the background and
// Send returns Retry until it is up. New waits for one connection attempt
// per server, each bounded by the smaller of the timeout setting and 2s.
func New(ctx context.Context, cfg deliver.Config) (*Destination, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s, err := ParseSettings(cfg.Settings)
	if err != nil {
		return nil, err
	}
	subj, err := parseSubject(s.Subject)
	if err != nil {
		return nil, &settings.Error{Key: "subject", Err: err}
	}
	urls, err := serverURLs(s.URL)
	if err != nil {
		return nil, &settings.Error{Key: "url", Err: err}
	}
	logger := cfg.WithDefaults().Logger
	d := &Destination{settings: s, subject: subj, servers: strings.Join(urls, ","), logger: logger}
	d.opts = []nats.Option{
		nats.Name("conflux destination " + cfg.ID),
		// Connect in the background when the server is down, and never
		// give up, not even on refused credentials: Send reports them.
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.IgnoreAuthErrorAbort(),
		nats.ReconnectWait(time.Second),
		// No buffering while disconnected: a publish fails at once and
		// the engine retries it, instead of it waiting in a client buffer
		// the Send cannot account for.
		nats.ReconnectBufSize(-1),
		nats.Timeout(min(s.Timeout, 2*time.Second)),
		// Find a half-open connection within a minute.
		nats.PingInterval(20 * time.Second),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("disconnected from NATS", "error", err)
			}
		}),
		nats.ConnectHandler(func(*nats.Conn) { d.connectErr.Store(nil) }),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			d.connectErr.Store(nil)
			logger.Info("reconnected to NATS", "server", nc.ConnectedUrlRedacted())
		}),
		nats.ReconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				d.connectErr.Store(&err)
			}
		}),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			logger.Debug("NATS reported an error", "error", err)
		}),
	}
	switch {
	case s.Credentials != "":
		c, err := s.credentials()
		if err != nil {
			return nil, &settings.Error{Key: "credentials", Err: err}
		}
		d.opts = append(d.opts, nats.UserCredentialBytes(c))
	case s.Token != "":
		d.opts = append(d.opts, nats.Token(s.Token.Value()))
	case s.User != "":
		d.opts = append(d.opts, nats.UserInfo(s.User, s.Password.Value()))
	}
	if _, _, err := d.connection(); err != nil {
		return nil, err
	}
	return d, nil
}

// connection returns the connection, dialling a new one if there is none
// or the last one was closed (the client closes a connection only on a
// fatal protocol error, as it reconnects otherwise).
func (d *Destination) connection() (*nats.Conn, jetstream.JetStream, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, nil, nats.ErrConnectionClosed
	}
	if d.nc != nil && !d.nc.IsClosed() {
		return d.nc, d.js, nil
	}
	nc, err := nats.Connect(d.servers, d.opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to NATS: %w", err)
	}
	js, err := jetstream.New(nc,
		// Forget an ack nobody waits for any more, so that a lost reply
		// does not hold a slot of the outstanding-publish limit for ever.
		jetstream.WithPublishAsyncTimeout(d.settings.Timeout),
		jetstream.WithPublishAsyncMaxPending(8*MaxBatch))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("opening JetStream: %w", err)
	}
	if d.nc != nil {
		d.logger.Warn("NATS connection was closed; opened a new one", "error", d.nc.LastError())
	}
	d.nc, d.js = nc, js
	return nc, js, nil
}

// Close closes the connection. It is safe to call more than once.
func (d *Destination) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	d.closed = true
	if d.nc != nil {
		d.nc.Close()
	}
	return nil
}

// Send publishes each event as one message and returns one Result per
// event, in order. It returns within the timeout setting, or sooner when
// ctx ends, with Retry results for what was not confirmed by then.
func (d *Destination) Send(ctx context.Context, events []*deliver.Event) []deliver.Result {
	results := make([]deliver.Result, len(events))
	if len(events) == 0 {
		return results
	}
	if err := ctx.Err(); err != nil {
		fill(results, classify(err))
		return results
	}
	ctx, cancel := context.WithTimeout(ctx, d.settings.Timeout)
	defer cancel()

	nc, js, err := d.connection()
	if err != nil {
		fill(results, classify(err))
		return results
	}
	if !nc.IsConnected() {
		fill(results, d.notConnected(nc))
		return results
	}
	msgs := make([]*nats.Msg, len(events))
	for i, e := range events {
		msgs[i] = d.message(e)
	}
	before := nc.LastError()
	if d.settings.JetStream {
		d.sendJetStream(ctx, nc, js, msgs, results, before)
	} else {
		d.sendCore(ctx, nc, msgs, results, before)
	}
	for i, r := range results {
		if r.Outcome != deliver.Delivered {
			results[i].Request = record(msgs[i])
		}
	}
	return results
}

// message builds the message for e.
func (d *Destination) message(e *deliver.Event) *nats.Msg {
	return &nats.Msg{
		Subject: d.subject.render(e.SourceID, e.Type),
		Header: nats.Header{
			HeaderMsgID:  []string{e.MessageID},
			HeaderSource: []string{e.SourceID},
			HeaderType:   []string{e.Type},
		},
		Data: e.JSON,
	}
}

// sendCore publishes msgs with core NATS, then flushes: once the server
// answers the PING that follows them, it has every message.
func (d *Destination) sendCore(ctx context.Context, nc *nats.Conn, msgs []*nats.Msg, results []deliver.Result, before error) {
	published := make([]int, 0, len(msgs))
	for i, m := range msgs {
		if err := nc.PublishMsg(m); err != nil {
			results[i] = classify(fmt.Errorf("publishing to %q: %w", m.Subject, err))
			continue
		}
		published = append(published, i)
	}
	if len(published) == 0 {
		return
	}
	ok := deliver.Result{Outcome: deliver.Delivered}
	if err := nc.FlushWithContext(ctx); err != nil {
		ok = classify(fmt.Errorf("flushing to the NATS server: %w", err))
	}
	denied, deniedErr := deniedSubject(nc, before)
	for _, i := range published {
		results[i] = ok
		if denied != "" && msgs[i].Subject == denied {
			results[i] = permissionDenied(deniedErr)
		}
	}
}

// sendJetStream publishes msgs asynchronously through JetStream and waits
// for every ack, until ctx ends.
func (d *Destination) sendJetStream(ctx context.Context, nc *nats.Conn, js jetstream.JetStream, msgs []*nats.Msg, results []deliver.Result, before error) {
	deadline, _ := ctx.Deadline()
	futures := make([]jetstream.PubAckFuture, len(msgs))
	for i, m := range msgs {
		wait := time.Until(deadline)
		if wait <= 0 {
			results[i] = classify(context.DeadlineExceeded)
			continue
		}
		// No retries on "no responders": it is classified below.
		f, err := js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0), jetstream.WithStallWait(wait))
		if err != nil {
			results[i] = classify(fmt.Errorf("publishing to %q: %w", m.Subject, err))
			continue
		}
		futures[i] = f
	}
	// A flush makes a permissions violation, which the server reports
	// instead of an ack, visible before the wait for the acks.
	if err := nc.FlushWithContext(ctx); err == nil {
		if denied, deniedErr := deniedSubject(nc, before); denied != "" {
			for i, f := range futures {
				if f != nil && msgs[i].Subject == denied {
					results[i], futures[i] = permissionDenied(deniedErr), nil
				}
			}
		}
	}
	lookups := map[string]deliver.Result{}
	for i, f := range futures {
		if f == nil {
			continue
		}
		select {
		case <-f.Ok():
			results[i] = deliver.Result{Outcome: deliver.Delivered}
			continue
		case err := <-f.Err():
			results[i] = classifyAsync(ctx, js, msgs[i].Subject, err, lookups)
			continue
		default:
		}
		select {
		case <-f.Ok():
			results[i] = deliver.Result{Outcome: deliver.Delivered}
		case err := <-f.Err():
			results[i] = classifyAsync(ctx, js, msgs[i].Subject, err, lookups)
		case <-ctx.Done():
			results[i] = classify(fmt.Errorf("waiting for the JetStream ack: %w", ctx.Err()))
		}
	}
}

// classifyAsync classifies an error of an asynchronous JetStream publish
// to subject. "No responders" means that no stream captures the subject,
// or that its stream has no leader for the moment: a lookup tells which.
// lookups keeps the answers for the rest of the Send, so that a batch that
// found no stream asks once per subject.
func classifyAsync(ctx context.Context, js jetstream.JetStream, subject string, err error, lookups map[string]deliver.Result) deliver.Result {
	if !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return classify(fmt.Errorf("publishing to %q: %w", subject, err))
	}
	if r, ok := lookups[subject]; ok {
		return r
	}
	var r deliver.Result
	_, lookupErr := js.StreamNameBySubject(ctx, subject)
	switch {
	case errors.Is(lookupErr, jetstream.ErrStreamNotFound):
		r = deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonDestinationError,
			Error: fmt.Sprintf("no JetStream stream captures subject %q: create one or change the subject setting", subject)}
	case errors.Is(lookupErr, jetstream.ErrJetStreamNotEnabled), errors.Is(lookupErr, jetstream.ErrJetStreamNotEnabledForAccount):
		r = deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonDestinationError,
			Error: fmt.Sprintf("publishing to %q: %v: enable JetStream or set jetstream: false", subject, lookupErr)}
	case lookupErr == nil:
		r = deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection,
			Error: fmt.Sprintf("publishing to %q: the stream that captures it did not answer", subject)}
	default:
		r = classify(fmt.Errorf("publishing to %q: no stream answered, and looking up its stream failed: %w", subject, lookupErr))
	}
	lookups[subject] = r
	return r
}

// classify maps a NATS or JetStream error to a Result.
func classify(err error) deliver.Result {
	retry := func(reason string) deliver.Result {
		return deliver.Result{Outcome: deliver.Retry, Reason: reason, Error: err.Error()}
	}
	discard := func(reason string) deliver.Result {
		return deliver.Result{Outcome: deliver.Discard, Reason: reason, Error: err.Error()}
	}
	if apiErr, ok := errors.AsType[*jetstream.APIError](err); ok {
		// JetStream's API errors carry an HTTP-like code: 5xx and 408/429
		// may pass (no quorum, storage full with discard: new, …);
		// others will not (message larger than the stream allows, …).
		if apiErr.Code >= 500 || apiErr.Code == 408 || apiErr.Code == 429 {
			return retry(deliver.ReasonDestinationError)
		}
		return discard(deliver.ReasonDestinationError)
	}
	switch {
	case errors.Is(err, nats.ErrMaxPayload):
		return discard(deliver.ReasonInvalidEvent)
	case errors.Is(err, nats.ErrBadSubject), errors.Is(err, nats.ErrHeadersNotSupported):
		return discard(deliver.ReasonDestinationError)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout),
		errors.Is(err, jetstream.ErrAsyncPublishTimeout), errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		return retry(deliver.ReasonTimeout)
	case errors.Is(err, context.Canceled):
		return deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection,
			Error: "stopped before NATS answered: " + err.Error()}
	case errors.Is(err, nats.ErrConnectionClosed), errors.Is(err, nats.ErrDisconnected),
		errors.Is(err, nats.ErrReconnectBufExceeded), errors.Is(err, nats.ErrNoServers),
		errors.Is(err, nats.ErrConnectionReconnecting), errors.Is(err, nats.ErrConnectionDraining),
		errors.Is(err, nats.ErrNoResponders):
		return retry(deliver.ReasonConnection)
	}
	return deliver.ClassifyError(err)
}

// notConnected is the Result for events that could not be published
// because the connection is down: Retry, or Discard when the server
// refused the credentials, which a retry will not change.
func (d *Destination) notConnected(nc *nats.Conn) deliver.Result {
	last := nc.LastError()
	if p := d.connectErr.Load(); last == nil && p != nil {
		last = *p
	}
	if isAuthError(last) {
		return deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonDestinationError,
			Error: fmt.Sprintf("the NATS server refused the credentials: %v", last)}
	}
	msg := "not connected to NATS (" + nc.Status().String() + ")"
	if last != nil {
		msg += ": " + last.Error()
	}
	return deliver.Result{Outcome: deliver.Retry, Reason: deliver.ReasonConnection, Error: msg}
}

func isAuthError(err error) bool {
	return errors.Is(err, nats.ErrAuthorization) || errors.Is(err, nats.ErrAuthExpired) ||
		errors.Is(err, nats.ErrAuthRevoked) || errors.Is(err, nats.ErrAccountAuthExpired)
}

// deniedSubject returns the subject of a publish permissions violation
// that the server reported since before was the connection's last error,
// and that error; "" when there was none. The server drops such a message
// without failing the flush, so this is how a Send learns of it.
func deniedSubject(nc *nats.Conn, before error) (string, error) {
	last := nc.LastError()
	if last == nil || last == before || !errors.Is(last, nats.ErrPermissionViolation) {
		return "", nil
	}
	// "… Permissions Violation for Publish to "orders.new""
	msg := last.Error()
	i := strings.Index(msg, "Publish to ")
	if i < 0 {
		return "", nil
	}
	subj := strings.TrimPrefix(strings.TrimSpace(msg[i+len("Publish to "):]), `"`)
	if j := strings.IndexAny(subj, `" `); j >= 0 {
		subj = subj[:j]
	}
	return subj, last
}

func permissionDenied(err error) deliver.Result {
	return deliver.Result{Outcome: deliver.Discard, Reason: deliver.ReasonDestinationError,
		Error: "the NATS server refused the publish: " + err.Error()}
}

func fill(results []deliver.Result, r deliver.Result) {
	for i := range results {
		results[i] = r
	}
}

// record renders m for the dead-letter store, bounded by
// [deliver.MaxRecorded].
func record(m *nats.Msg) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "PUB %s\n", m.Subject)
	for _, k := range []string{HeaderMsgID, HeaderSource, HeaderType} {
		fmt.Fprintf(&b, "%s: %s\n", k, m.Header.Get(k))
	}
	b.WriteByte('\n')
	b.Write(m.Data[:min(len(m.Data), deliver.MaxRecorded)])
	if b.Len() > deliver.MaxRecorded {
		b.Truncate(deliver.MaxRecorded)
	}
	return b.Bytes()
}
