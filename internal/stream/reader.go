package stream

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Msg is one message read from a stream.
type Msg struct {
	// Seq is the message's sequence in its stream.
	Seq uint64
	// Pending is how many messages followed it in the stream when it was
	// delivered (a reader's lag); 0 for messages not read by a Reader.
	Pending uint64
	Header  nats.Header
	Data    []byte
}

// Reader reads one stream in order, from a chosen sequence on, with an
// ordered (ephemeral, unacknowledged) consumer: the reader's position is
// the caller's to keep. It is what a stage that checkpoints its own input
// position reads with.
//
// A Reader is not safe for concurrent use.
type Reader struct {
	stream string
	cons   jetstream.Consumer
	it     jetstream.MessagesContext
	own    *nats.Conn // the reader's own connection, if it has one
}

// Read opens a reader of stream that starts at sequence from (1 for the
// beginning; a sequence past the end waits for new messages).
func (l *Log) Read(ctx context.Context, stream string, from uint64) (*Reader, error) {
	return l.read(ctx, l.js, nil, stream, from)
}

// ReadAlone is Read on a connection of the reader's own, named name: a
// reader that may stop reading for a long time (a delivery queue whose
// destination is down) then holds back only its own connection, never the
// one the Tracking API appends through.
func (l *Log) ReadAlone(ctx context.Context, name, stream string, from uint64) (*Reader, error) {
	nc, err := l.connect(name)
	if err != nil {
		return nil, fmt.Errorf("connecting a reader of stream %s to %s: %w", stream, l.where(), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("opening JetStream for a reader of stream %s: %w", stream, err)
	}
	r, err := l.read(ctx, js, nc, stream, from)
	if err != nil {
		nc.Close()
	}
	return r, err
}

func (l *Log) read(ctx context.Context, js jetstream.JetStream, own *nats.Conn, stream string, from uint64) (*Reader, error) {
	cfg := jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy}
	if from > 1 {
		cfg = jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverByStartSequencePolicy, OptStartSeq: from}
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s from %d: %w", stream, from, err)
	}
	it, err := cons.Messages(jetstream.PullMaxBytes(4 * MaxMessageBytes))
	if err != nil {
		return nil, fmt.Errorf("reading stream %s from %d: %w", stream, from, err)
	}
	return &Reader{stream: stream, cons: cons, it: it, own: own}, nil
}

// Next returns the messages available now, in order: it waits until ctx
// ends for the first, then takes those that follow within linger of each
// other until their data reaches maxBytes (so the last one may take it
// past maxBytes; the first is always taken). It returns ctx's error when ctx ends before any message came.
func (r *Reader) Next(ctx context.Context, maxBytes int, linger time.Duration) ([]Msg, error) {
	m, err := r.it.Next(jetstream.NextContext(ctx))
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("reading stream %s: %w", r.stream, err)
	}
	first, err := toMsg(m)
	if err != nil {
		return nil, fmt.Errorf("reading stream %s: %w", r.stream, err)
	}
	out := []Msg{first}
	size := len(first.Data)
	for size < maxBytes {
		m, err := r.it.Next(jetstream.NextMaxWait(linger))
		if errors.Is(err, nats.ErrTimeout) || errors.Is(err, context.DeadlineExceeded) {
			break
		}
		if err != nil {
			return out, nil // the next call reports it
		}
		msg, err := toMsg(m)
		if err != nil {
			return nil, fmt.Errorf("reading stream %s: %w", r.stream, err)
		}
		out = append(out, msg)
		size += len(msg.Data)
	}
	return out, nil
}

func toMsg(m jetstream.Msg) (Msg, error) {
	md, err := m.Metadata()
	if err != nil {
		return Msg{}, fmt.Errorf("message metadata: %w", err)
	}
	return Msg{Seq: md.Sequence.Stream, Pending: md.NumPending, Header: m.Headers(), Data: m.Data()}, nil
}

// Close stops the reader (and closes its own connection). It is safe to
// call twice.
func (r *Reader) Close() {
	r.it.Stop()
	if r.own != nil {
		r.own.Close()
	}
}

// Last returns the last message published to subject in stream, and
// false when there is none.
func (l *Log) Last(ctx context.Context, stream, subject string) (Msg, bool, error) {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return Msg{}, false, fmt.Errorf("opening stream %s: %w", stream, err)
	}
	m, err := s.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return Msg{}, false, nil
	}
	if err != nil {
		return Msg{}, false, fmt.Errorf("reading the last message of %s in stream %s: %w", subject, stream, err)
	}
	return Msg{Seq: m.Sequence, Header: m.Header, Data: m.Data}, true, nil
}

// LastSeq returns the sequence of the last message of stream (0 when it
// has never held one).
func (l *Log) LastSeq(ctx context.Context, stream string) (uint64, error) {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return 0, fmt.Errorf("opening stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("reading stream %s: %w", stream, err)
	}
	return info.State.LastSeq, nil
}

// Backward calls fn with the messages of stream from the last one back to
// the first the stream still holds, until fn returns false. It reads one
// message at a time, for the short scans recovery needs.
func (l *Log) Backward(ctx context.Context, stream string, fn func(Msg) bool) error {
	s, err := l.js.Stream(ctx, stream)
	if err != nil {
		return fmt.Errorf("opening stream %s: %w", stream, err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		return fmt.Errorf("reading stream %s: %w", stream, err)
	}
	for seq := info.State.LastSeq; seq >= max(info.State.FirstSeq, 1); seq-- {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue // deleted
		}
		if err != nil {
			return fmt.Errorf("reading message %d of stream %s: %w", seq, stream, err)
		}
		if !fn(Msg{Seq: m.Sequence, Header: m.Header, Data: m.Data}) {
			return nil
		}
	}
	return nil
}
