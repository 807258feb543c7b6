// Package loadgen sends Segment-shaped Tracking API traffic to a server and
// measures what it takes: events per second, request latency percentiles,
// and failures by status. It backs `conflux bench ingest`.
//
// The request bodies are built before the run ([NewBodies]) so that the
// cost of generating events stays out of the measurement; each request
// copies one of a pool of templates and patches a fixed-width field per
// event (messageId, userId, anonymousId), which keeps every messageId
// unique across the whole run. With gzip the templates are pre-compressed
// too: each patched field travels in a stored (uncompressed) deflate block,
// so a request costs a copy, a few digit writes and a CRC, never a
// compression.
//
// Two loops are offered. Without a rate each connection sends its next
// request as soon as the previous one is answered (a closed loop: the
// server's maximum throughput). With a rate, requests are due on a fixed
// schedule (an open loop) and latency is measured from the time a request
// was due, not from the time it was sent, so a server that falls behind
// shows its queueing in the percentiles instead of quietly slowing the
// generator down (the error known as coordinated omission).
//
// It deliberately does not retry, follow redirects, or check what the
// server stored: it measures the Tracking API's answers only. [StartNoop]
// and [StartConflux] start in-process targets; load generator goroutines
// carry the pprof label loadgen=client, so a CPU profile of an in-process
// run can be split between client and server.
package loadgen

import (
	"bytes"
	"compress/gzip"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"time"

	"github.com/klauspost/compress/flate"
)

// Defaults of [Options] and [BodyOptions].
const (
	DefaultConnections    = 32
	DefaultDuration       = 10 * time.Second
	DefaultBatch          = 100
	DefaultEventBytes     = 600
	DefaultUsers          = 100_000
	DefaultRequestTimeout = 30 * time.Second
)

// Layout of the patched region of each event: the messageId's counter,
// then userId and anonymousId, contiguous so that one stored deflate block
// carries all three in a gzip body.
const (
	seqWidth    = 12 // messageId counter digits
	userWidth   = 8  // userId digits: up to 10^8 users
	anonWidth   = 12 // anonymousId digits
	midUser     = `","userId":"user-`
	midAnon     = `","anonymousId":"4f7c8a52-1c2e-4b7a-9d1e-`
	userOff     = seqWidth + len(midUser)
	anonOff     = userOff + userWidth + len(midAnon)
	regionWidth = anonOff + anonWidth
	maxUsers    = 100_000_000
)

// BodyOptions shape the generated request bodies. Zero values take the
// documented defaults.
type BodyOptions struct {
	// Batch is the number of events per request. 1 sends single-event
	// bodies to /v1/track; more sends {"batch":[…]} to /v1/batch.
	// Default: 100. Range: 1–2,500 (the Tracking API's limit).
	Batch int
	// EventBytes is the size of each event's JSON, reached by padding a
	// description property. An event is never smaller than its fields
	// (~550 bytes). Default: 600.
	EventBytes int
	// Users is the number of distinct userIds the events spread over.
	// Default: 100,000. Range: 1–10^8.
	Users int
	// Gzip compresses the bodies (Content-Encoding: gzip).
	Gzip bool
	// Pool is the number of distinct templates. Default: enough for 4,096
	// events, at least 8.
	Pool int
	// Tag is part of every messageId ("lg-<tag>-<counter>") so that runs
	// against the same server don't collide. Default: 8 random hex digits.
	Tag string
}

func (o *BodyOptions) defaults() error {
	if o.Batch == 0 {
		o.Batch = DefaultBatch
	}
	if o.EventBytes == 0 {
		o.EventBytes = DefaultEventBytes
	}
	if o.Users == 0 {
		o.Users = DefaultUsers
	}
	if o.Batch < 1 || o.Batch > 2500 {
		return fmt.Errorf("batch %d: want 1 to 2500 events", o.Batch)
	}
	if o.EventBytes < 0 || o.EventBytes > 30_000 {
		return fmt.Errorf("event size %d: want 0 to 30000 bytes", o.EventBytes)
	}
	if o.Users < 1 || o.Users > maxUsers {
		return fmt.Errorf("users %d: want 1 to %d", o.Users, maxUsers)
	}
	if o.Pool <= 0 {
		o.Pool = max(8, (4096+o.Batch-1)/o.Batch)
	}
	if o.Tag == "" {
		var b [4]byte
		_, _ = rand.Read(b[:])
		o.Tag = hex.EncodeToString(b[:])
	}
	return nil
}

// Bodies is a pool of pre-built request bodies. It is read-only once
// built and safe for concurrent use; each goroutine brings its own
// [Scratch].
type Bodies struct {
	opts      BodyOptions
	templates []template
	plainSize int // mean, bytes
	wireSize  int
}

type template struct {
	plain   []byte
	gz      []byte   // nil without gzip
	regions []region // one per event
}

// region locates an event's patched region in the plain and gzip templates.
type region struct{ plain, gz int }

// Scratch holds one goroutine's copy of a body being sent. The zero value
// is ready to use.
type Scratch struct {
	plain, wire []byte
}

// NewBodies builds the pool of templates. With gzip it also checks, once
// per template, that a patched body decompresses to the patched JSON.
func NewBodies(o BodyOptions) (*Bodies, error) {
	if err := o.defaults(); err != nil {
		return nil, err
	}
	b := &Bodies{opts: o, templates: make([]template, o.Pool)}
	ts := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	var fw *flate.Writer
	if o.Gzip {
		var err error
		if fw, err = flate.NewWriter(nil, flate.DefaultCompression); err != nil {
			return nil, err
		}
	}
	var plain, wire int
	for p := range b.templates {
		t := &b.templates[p]
		t.regions = make([]region, o.Batch)
		if o.Batch > 1 {
			t.plain = append(t.plain, `{"batch":[`...)
		}
		for i := range o.Batch {
			if i > 0 {
				t.plain = append(t.plain, ',')
			}
			t.plain, t.regions[i].plain = appendEvent(t.plain, p*o.Batch+i, o.EventBytes, o.Tag, ts)
		}
		if o.Batch > 1 {
			t.plain = append(t.plain, `],"sentAt":"`+ts+`"}`...)
		}
		if o.Gzip {
			var err error
			if t.gz, err = gzipTemplate(fw, t.plain, t.regions); err != nil {
				return nil, err
			}
			if err := b.checkGzip(p); err != nil {
				return nil, err
			}
		}
		plain += len(t.plain)
		if t.gz != nil {
			wire += len(t.gz)
		} else {
			wire += len(t.plain)
		}
	}
	b.plainSize, b.wireSize = plain/len(b.templates), wire/len(b.templates)
	return b, nil
}

// Path is the Tracking API endpoint the bodies are for.
func (b *Bodies) Path() string {
	if b.opts.Batch == 1 {
		return "/v1/track"
	}
	return "/v1/batch"
}

// Events is the number of events in each body.
func (b *Bodies) Events() int { return b.opts.Batch }

// Size returns the mean size of a body in bytes, as JSON and as sent
// (the same without gzip).
func (b *Bodies) Size() (plain, wire int) { return b.plainSize, b.wireSize }

// Build returns the body of request number k, whose events take the
// messageId counters first, first+1, … first+Events()-1. The result lives
// in s and is valid until s is used again. Give each request a distinct
// first (e.g. k*Events()) and every messageId of a run is unique.
func (b *Bodies) Build(s *Scratch, k, first uint64) []byte {
	t := &b.templates[k%uint64(len(b.templates))]
	s.plain = append(s.plain[:0], t.plain...)
	for i, r := range t.regions {
		b.patch(s.plain[r.plain:r.plain+regionWidth], first+uint64(i))
	}
	if t.gz == nil {
		return s.plain
	}
	s.wire = append(s.wire[:0], t.gz...)
	for _, r := range t.regions {
		copy(s.wire[r.gz:r.gz+regionWidth], s.plain[r.plain:r.plain+regionWidth])
	}
	binary.LittleEndian.PutUint32(s.wire[len(s.wire)-8:], crc32.ChecksumIEEE(s.plain))
	return s.wire
}

// patch writes event number seq's counter and user into its region.
func (b *Bodies) patch(dst []byte, seq uint64) {
	putDigits(dst[:seqWidth], seq)
	// Spread consecutive events over the users (a multiplicative hash).
	x := seq * 0x9E3779B97F4A7C15
	u := (x ^ x>>29) % uint64(b.opts.Users)
	putDigits(dst[userOff:userOff+userWidth], u)
	putDigits(dst[anonOff:anonOff+anonWidth], u)
}

// putDigits writes v in decimal, zero-padded to fill dst (high digits of a
// too-large v are dropped).
func putDigits(dst []byte, v uint64) {
	for i := len(dst) - 1; i >= 0; i-- {
		dst[i] = '0' + byte(v%10)
		v /= 10
	}
}

// checkGzip verifies template p: a patched body must decompress to the
// patched JSON.
func (b *Bodies) checkGzip(p int) error {
	var s Scratch
	wire := b.Build(&s, uint64(p), 987_654_321_000)
	zr, err := gzip.NewReader(bytes.NewReader(wire))
	if err != nil {
		return fmt.Errorf("checking gzip template %d: %w", p, err)
	}
	got, err := io.ReadAll(zr)
	if err != nil {
		return fmt.Errorf("checking gzip template %d: %w", p, err)
	}
	if !bytes.Equal(got, s.plain) {
		return fmt.Errorf("checking gzip template %d: decompresses to different bytes", p)
	}
	return nil
}

// appendEvent appends event number n, about size bytes, and returns the
// offset of its patched region.
func appendEvent(dst []byte, n, size int, tag, ts string) ([]byte, int) {
	products := [...]struct{ event, category, name, price string }{
		{"Product Viewed", "Games", "Monopoly", "18.99"},
		{"Product Added", "Games", "Catan", "42.50"},
		{"Product Clicked", "Books", "Dune", "9.99"},
		{"Checkout Started", "Toys", "Train Set", "64.00"},
	}
	const words = "lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore "
	pr := products[n%len(products)]
	sku := n % 997
	build := func(dst []byte, pad int) ([]byte, int) {
		dst = append(dst, `{"type":"track","event":"`+pr.event+`","messageId":"lg-`+tag+`-`...)
		off := len(dst)
		dst = append(dst, strings.Repeat("0", seqWidth)+midUser+strings.Repeat("0", userWidth)+midAnon+strings.Repeat("0", anonWidth)...)
		dst = fmt.Appendf(dst, `","timestamp":"%s","properties":{"product_id":"507f1f77bcf86cd7994%05d","sku":"G-%d",`+
			`"category":"%s","name":"%s","price":%s,"quantity":%d,"currency":"USD","description":"`,
			ts, n%100_000, sku, pr.category, pr.name, pr.price, 1+n%3)
		for pad > 0 {
			k := min(pad, len(words))
			dst = append(dst, words[:k]...)
			pad -= k
		}
		dst = fmt.Appendf(dst, `"},"context":{"library":{"name":"analytics.js","version":"next-1.84.3"},`+
			`"page":{"path":"/product/G-%d","title":"%s","url":"https://www.example.com/product/G-%d"},`+
			`"userAgent":"Mozilla/5.0 (X11; Linux x86_64)","locale":"en-US"}}`, sku, pr.name, sku)
		return dst, off
	}
	mark := len(dst)
	dst, _ = build(dst, 0)
	pad := size - (len(dst) - mark)
	if pad <= 0 {
		return build(dst[:mark], 0)
	}
	return build(dst[:mark], pad)
}

// gzipTemplate compresses plain as a gzip member in which each region
// is a stored deflate block, so that its bytes can be patched in the
// compressed body; the CRC in the trailer is rewritten per request. The
// text between regions is compressed with the preceding text as a preset
// dictionary in which the regions are masked out (zero bytes, which the
// JSON never contains), so no back-reference points into a region.
func gzipTemplate(fw *flate.Writer, plain []byte, regions []region) ([]byte, error) {
	const window = 32 << 10
	masked := bytes.Clone(plain)
	for _, r := range regions {
		clear(masked[r.plain : r.plain+regionWidth])
	}
	var out bytes.Buffer
	out.Write([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}) // gzip header, deflate, no mtime, unknown OS
	prev := 0
	for i, r := range regions {
		fw.ResetDict(&out, masked[max(0, prev-window):prev])
		if _, err := fw.Write(plain[prev:r.plain]); err != nil {
			return nil, err
		}
		if err := fw.Flush(); err != nil { // ends byte-aligned
			return nil, err
		}
		// A stored block: BFINAL=0, BTYPE=00, padding, LEN, NLEN, bytes.
		hdr := binary.LittleEndian.AppendUint16([]byte{0}, uint16(regionWidth))
		out.Write(binary.LittleEndian.AppendUint16(hdr, ^uint16(regionWidth)))
		regions[i].gz = out.Len()
		out.Write(plain[r.plain : r.plain+regionWidth])
		prev = r.plain + regionWidth
	}
	fw.ResetDict(&out, masked[max(0, prev-window):prev])
	if _, err := fw.Write(plain[prev:]); err != nil {
		return nil, err
	}
	if err := fw.Close(); err != nil {
		return nil, err
	}
	var trailer [8]byte // CRC-32, patched per request; ISIZE
	binary.LittleEndian.PutUint32(trailer[4:], uint32(len(plain)))
	out.Write(trailer[:])
	return out.Bytes(), nil
}
