package aggregate

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
)

// resolveCPUProfile, when set, is where BenchmarkResolve writes a CPU
// profile of its timed part only (not the warm-up or the generation of
// events; the last iteration's), one file per engine: <path>.sqlite-history, <path>.sqlite-no-history and
// the postgres ones. Use it instead of -cpuprofile, which would mostly
// profile the warm-up: go test ./internal/aggregate/ -run XXX -bench
// BenchmarkResolve -benchtime 1x -resolve.cpuprofile=/tmp/resolve.prof
// (the package before the flag).
var resolveCPUProfile = flag.String("resolve.cpuprofile", "", "write a CPU profile of BenchmarkResolve's timed part to `path`.<engine>")

const (
	// resolvePopulation is the people the store knows before the timed
	// part: 80% identified users, 20% anonymous visitors.
	resolvePopulation = 200_000
	// resolveEvents are applied per iteration, in batches of resolveBatch
	// (about the 1 MiB the stage reads per transaction).
	resolveEvents = 100_000
	resolveBatch  = 2000
)

// BenchmarkResolve is the aggregation stage's identity resolution on one
// goroutine: a store warmed with 200,000 people (each one's first event
// applied through the resolver), then 100,000 events per iteration, 2,000
// per transaction as the stage applies them. 90% of the events are from
// known people with only known identifiers (tracks, and identifies that
// update traits); 10% bring identifiers: new anonymous visitors, first
// identifies of visitors (user id and email), known users on a new
// anonymous id, and visitors logging in as known users (a merge).
//
// events/cpu-s is per CPU-second of this process (resolver, SQLite, GC);
// on PostgreSQL, events/cpu-s-with-server adds the CPU of the server
// backends the store's connections use.
//
// Each engine runs twice: with the event history (the default), and
// without it (profiles.history: false), which is identity resolution with
// traits, links and metadata alone.
func BenchmarkResolve(b *testing.B) {
	for _, history := range []bool{true, false} {
		name := map[bool]string{true: "history", false: "no-history"}[history]
		b.Run("sqlite/"+name, func(b *testing.B) { benchResolve(b, "sqlite/"+name, benchSQLite(b), nil, history) })
		b.Run("postgres/"+name, func(b *testing.B) {
			db, server := benchPostgres(b)
			benchResolve(b, "postgres/"+name, db, server, history)
		})
	}
}

func benchResolve(b *testing.B, engine string, db *store.DB, server *pgBackends, history bool) {
	ctx := context.Background()
	rules := identity.DefaultRules()
	r := NewResolver(db, func() *identity.Rules { return rules }, identity.Options{}, nil)
	r.NoHistory = func() bool { return !history }
	w := newWorkload(42, time.Date(2026, 11, 2, 8, 0, 0, 0, time.UTC))
	var seq uint64
	apply := func(recs []Record) (Counts, error) {
		var c Counts
		for i := 0; i < len(recs); i += resolveBatch {
			seq++
			if db.Dialect() == store.Postgres && seq%10 == 1 {
				// The statistics autovacuum would keep (it is off on this
				// machine's server): without them PostgreSQL scans a whole
				// identifier type to find a batch's identifiers.
				if _, err := db.SQL().ExecContext(ctx, `ANALYZE profiles, profile_ids, profile_traits, profile_events`); err != nil {
					return c, err
				}
			}
			o, err := r.Apply(ctx, recs[i:min(i+resolveBatch, len(recs))], func(ctx context.Context, tx *sql.Tx) error {
				return movePosition(ctx, db, tx, seq-1, seq, time.Now())
			})
			if err != nil {
				return c, err
			}
			c.add(o)
		}
		return c, nil
	}

	warm := w.warmup(resolvePopulation)
	start := time.Now()
	c, err := apply(warm)
	if err != nil {
		b.Fatal(err)
	}
	took := time.Since(start)
	if c.Events != len(warm) || c.Created != len(warm) {
		b.Fatalf("warm-up: %v; want %d events, each a new profile", c, len(warm))
	}
	b.Logf("%s warm-up: %d people (first events, each a new profile) in %.1f s: %.0f events/s",
		engine, len(warm), took.Seconds(), float64(len(warm))/took.Seconds())

	var total, cpu, srv time.Duration
	var counts Counts
	var mix workloadMix
	var bytes int
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		recs, m := w.events(resolveEvents)
		mix.add(m)
		for _, rec := range recs {
			bytes += len(rec.JSON)
		}
		var stopProfile func()
		if *resolveCPUProfile != "" {
			stopProfile = startCPUProfile(b, *resolveCPUProfile+"."+strings.ReplaceAll(engine, "/", "-"))
		}
		b.StartTimer()
		cpu0, srv0 := cpuTime(), server.sample()
		start := time.Now()
		c, err := apply(recs)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Since(start)
		cpu += cpuTime() - cpu0
		srv += server.since(srv0)
		b.StopTimer()
		if stopProfile != nil {
			stopProfile()
		}
		counts.add(c)
	}
	n := resolveEvents * b.N
	if counts.Events != n || counts.Unresolved+counts.Invalid+counts.Dropped+counts.Capped != 0 ||
		counts.Created != mix.newVisitors || counts.Merges != mix.merges {
		b.Fatalf("applied %v; want %d events, %d created, %d merges, nothing dropped or capped", counts, n, mix.newVisitors, mix.merges)
	}
	b.ReportMetric(float64(n)/total.Seconds(), "events/s")
	b.ReportMetric(float64(n)/cpu.Seconds(), "events/cpu-s")
	b.ReportMetric(float64(total.Nanoseconds())/float64(n), "ns/event")
	msg := fmt.Sprintf("%s: %d events (%.0f bytes on average; %s) in %.2f s, %.2f CPU-s: %.0f events/s, %.0f events/cpu-s, %.1f µs/event",
		engine, n, float64(bytes)/float64(n), mix, total.Seconds(), cpu.Seconds(), float64(n)/total.Seconds(), float64(n)/cpu.Seconds(),
		float64(total.Microseconds())/float64(n))
	if server != nil {
		b.ReportMetric(float64(n)/(cpu+srv).Seconds(), "events/cpu-s-with-server")
		msg += fmt.Sprintf("; PostgreSQL backends %.2f CPU-s: %.0f events per CPU-second of both", srv.Seconds(), float64(n)/(cpu+srv).Seconds())
	}
	b.Log(msg)
}

// startCPUProfile starts a CPU profile into path and returns its stop.
func startCPUProfile(b *testing.B, path string) func() {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		_ = f.Close()
		b.Fatalf("starting the CPU profile (is -cpuprofile set too?): %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
	}
}

// cpuTime is the CPU time (user and system) the process has used.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchSQLite opens an SQLite store in a file, as storetest.SQLite does
// but without logging the migrations (which would crowd out the figures).
func benchSQLite(b *testing.B) *store.DB {
	db, err := store.Open(b.Context(), store.Options{SQLitePath: filepath.Join(b.TempDir(), "state", "conflux.db")})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	return db
}

// benchPostgres opens a PostgreSQL store whose connections carry a unique
// application_name, so that the CPU of their server backends can be read.
func benchPostgres(b *testing.B) (*store.DB, *pgBackends) {
	url := storetest.PostgresSchema(b)
	var suffix [6]byte
	_, _ = rand.Read(suffix[:])
	app := "conflux-bench-" + hex.EncodeToString(suffix[:])
	if strings.Contains(url, "://") {
		url += "&application_name=" + app // the URL has a search_path already
	} else {
		url += " application_name=" + app
	}
	db, err := store.Open(b.Context(), store.Options{PostgresURL: url})
	if err != nil {
		b.Fatal(err)
	}
	// Registered after PostgresSchema's cleanup: runs before the drop.
	b.Cleanup(func() { _ = db.Close() })
	return db, &pgBackends{db: db, app: app}
}

// pgBackends reads the CPU time of the PostgreSQL backends serving one
// store's connections, from /proc (the server must run on this machine).
// A backend that exits between two samples loses its time; the store's
// pool keeps its connections, so none should.
type pgBackends struct {
	db  *store.DB
	app string
}

// sample returns each backend's CPU time so far; nil for a nil p.
func (p *pgBackends) sample() map[int]time.Duration {
	if p == nil {
		return nil
	}
	rows, err := p.db.SQL().Query(`SELECT pid FROM pg_stat_activity WHERE application_name = $1`, p.app)
	if err != nil {
		return nil
	}
	defer rows.Close()
	out := map[int]time.Duration{}
	for rows.Next() {
		var pid int
		if rows.Scan(&pid) == nil {
			out[pid] = procCPU(pid)
		}
	}
	return out
}

// since is the CPU time the backends used since before.
func (p *pgBackends) since(before map[int]time.Duration) time.Duration {
	var d time.Duration
	for pid, t := range p.sample() {
		d += t - before[pid]
	}
	return d
}

// procCPU is a process's user and system time from /proc/<pid>/stat, 0 if
// unreadable.
func procCPU(pid int) time.Duration {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')') // the command may hold spaces
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0
	}
	// Fields 14 and 15 (utime, stime) in USER_HZ, 100 on Linux.
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(u+st) * 10 * time.Millisecond
}

// person is one browser or app user the workload knows.
type person struct {
	user   int    // user number; -1 for an anonymous visitor
	anon   string // the current anonymous id
	anons  int    // anonymous ids gained (the default limit is 5 a week)
	device string // mobile device id, "" on the web
	os     string // "ios" or "android" with a device
	logins int
	plan   string
	gone   bool // merged into another person
}

// workload generates the benchmark's events, keeping what the store
// knows so that known people carry only known identifiers.
type workload struct {
	rng      *mrand.Rand
	people   []person
	visitors []int // indexes of the anonymous visitors
	users    int   // user numbers given
	msgs     int
	at       time.Time
}

// workloadMix counts the kinds of events generated.
type workloadMix struct {
	tracks, identifies                             int // of known people, known identifiers only
	newVisitors, firstIdentifies, newAnons, merges int
}

func (m *workloadMix) add(o workloadMix) {
	m.tracks += o.tracks
	m.identifies += o.identifies
	m.newVisitors += o.newVisitors
	m.firstIdentifies += o.firstIdentifies
	m.newAnons += o.newAnons
	m.merges += o.merges
}

func (m workloadMix) String() string {
	return fmt.Sprintf("known: %d tracks, %d identifies; new identifiers: %d new visitors, %d first identifies, %d new anonymous ids, %d merges",
		m.tracks, m.identifies, m.newVisitors, m.firstIdentifies, m.newAnons, m.merges)
}

func newWorkload(seed uint64, start time.Time) *workload {
	return &workload{rng: mrand.New(mrand.NewPCG(seed, seed^0x9e3779b97f4a7c15)), at: start}
}

var (
	firstNames = []string{"ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "radia", "linus", "frances", "john"}
	lastNames  = []string{"lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "hamilton", "thompson", "perlman", "torvalds", "allen", "backus"}
	plans      = []string{"free", "starter", "pro", "enterprise"}
	companies  = []string{"Initech", "Globex", "Umbrella", "Hooli", "Acme Corp", "Stark Industries"}
	products   = []struct{ id, name, category string }{
		{"p_1029", "Monopoly: 3rd Edition", "Games"},
		{"p_2207", "Uno Card Game", "Games"},
		{"p_3141", "Wireless Mouse", "Electronics"},
		{"p_4096", "The Pragmatic Programmer", "Books"},
	}
	trackNames = []string{"Product Viewed", "Product Added", "Product Clicked", "Checkout Started", "Product List Viewed"}
)

func (w *workload) uuid() string {
	a, c := w.rng.Uint64(), w.rng.Uint64()
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", a>>32, (a>>16)&0xffff, a&0xfff, (c>>48)&0x3fff|0x8000, c&0xffffffffffff)
}

// newPerson adds a person with a fresh anonymous id, a user when user.
func (w *workload) newPerson(user bool) int {
	p := person{user: -1, anon: w.uuid(), anons: 1, plan: plans[w.rng.IntN(len(plans))]}
	if user {
		p.user = w.users
		w.users++
	}
	if w.rng.IntN(10) < 3 {
		p.device, p.os = strings.ToUpper(w.uuid()), "ios"
		if w.rng.IntN(2) == 0 {
			p.device, p.os = fmt.Sprintf("%016x", w.rng.Uint64()), "android"
		}
	}
	w.people = append(w.people, p)
	if !user {
		w.visitors = append(w.visitors, len(w.people)-1)
	}
	return len(w.people) - 1
}

// warmup returns the first event of n new people: an identify of each
// user, a track of each visitor.
func (w *workload) warmup(n int) []Record {
	recs := make([]Record, 0, n)
	for range n {
		if i := w.newPerson(w.rng.IntN(10) < 8); w.people[i].user >= 0 {
			recs = append(recs, w.identify(&w.people[i]))
		} else {
			recs = append(recs, w.track(&w.people[i]))
		}
	}
	return recs
}

// known returns a random known person, a user when user.
func (w *workload) known(user bool) *person {
	for {
		p := &w.people[w.rng.IntN(len(w.people))]
		if !p.gone && (!user || p.user >= 0) {
			return p
		}
	}
}

// takeVisitor removes a random visitor from the visitors and returns it.
func (w *workload) takeVisitor() *person {
	k := w.rng.IntN(len(w.visitors))
	i := w.visitors[k]
	w.visitors[k] = w.visitors[len(w.visitors)-1]
	w.visitors = w.visitors[:len(w.visitors)-1]
	return &w.people[i]
}

// events returns the next n events and their mix.
func (w *workload) events(n int) ([]Record, workloadMix) {
	var m workloadMix
	recs := make([]Record, 0, n)
	for range n {
		switch k := w.rng.IntN(1000); {
		case k < 780:
			recs = append(recs, w.track(w.known(false)))
			m.tracks++
		case k < 900:
			p := w.known(true)
			p.logins++
			if w.rng.IntN(5) == 0 {
				p.plan = plans[w.rng.IntN(len(plans))]
			}
			recs = append(recs, w.identify(p))
			m.identifies++
		case k < 940:
			recs = append(recs, w.track(&w.people[w.newPerson(false)]))
			m.newVisitors++
		case k < 970:
			// A visitor signs up: its anonymous id meets a new user id and
			// email.
			p := w.takeVisitor()
			p.user = w.users
			w.users++
			recs = append(recs, w.identify(p))
			m.firstIdentifies++
		case k < 990:
			// A known user on a new browser: a new anonymous id.
			p := w.known(true)
			for p.anons >= 4 || p.device != "" {
				p = w.known(true)
			}
			p.anon, p.anons = w.uuid(), p.anons+1
			recs = append(recs, w.track(p))
			m.newAnons++
		default:
			// A visitor logs in as a known user: the visitor's profile is
			// merged into the user's.
			v := w.takeVisitor()
			u := w.known(true)
			for u.anons >= 4 || (u.device != "" && v.device != "" && u.os == v.os) {
				u = w.known(true)
			}
			v.gone = true
			u.anon, u.anons = v.anon, u.anons+1
			if v.device != "" {
				u.device, u.os = v.device, v.os
			}
			u.logins++
			recs = append(recs, w.identify(u))
			m.merges++
		}
	}
	return recs, m
}

// next advances the clock and returns a fresh message id and the event's
// timestamps.
func (w *workload) next() (string, string, string) {
	w.msgs++
	w.at = w.at.Add(time.Duration(5+w.rng.IntN(10)) * time.Millisecond)
	const ms = "2006-01-02T15:04:05.000Z07:00"
	return fmt.Sprintf("%08x-bench-%010d", w.rng.Uint32(), w.msgs), w.at.Format(ms), w.at.Add(80 * time.Millisecond).Format(ms)
}

// context renders p's event context: the web's library, page and user
// agent, or an app's library, device and OS.
func (w *workload) context(p *person, path string) string {
	if p.device == "" {
		return fmt.Sprintf(`{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":%q,"title":"Shop"},`+
			`"ip":"203.0.113.%d","userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0.0.0"}`,
			path, w.rng.IntN(255))
	}
	if p.os == "ios" {
		return fmt.Sprintf(`{"library":{"name":"analytics-ios","version":"4.1.8"},"app":{"name":"Shop","version":"3.2.1","build":"321"},`+
			`"device":{"id":%q,"type":"ios","manufacturer":"Apple","model":"iPhone15,2"},"os":{"name":"iOS","version":"17.2"},"ip":"198.51.100.%d"}`,
			p.device, w.rng.IntN(255))
	}
	return fmt.Sprintf(`{"library":{"name":"analytics-android","version":"4.10.4"},"app":{"name":"Shop","version":"3.2.1","build":"321"},`+
		`"device":{"id":%q,"type":"android","manufacturer":"Google","model":"Pixel 8"},"os":{"name":"Android","version":"14"},"ip":"198.51.100.%d"}`,
		p.device, w.rng.IntN(255))
}

// track is a track of p: with its user id when p is a user (a logged-in
// one) and always its current anonymous id.
func (w *workload) track(p *person) Record {
	id, ts, recv := w.next()
	prod := products[w.rng.IntN(len(products))]
	uid := ""
	if p.user >= 0 {
		uid = fmt.Sprintf(`"userId":"usr_%07d",`, p.user)
	}
	return Record{Source: "web", JSON: fmt.Appendf(nil,
		`{"type":"track","event":%q,"messageId":%q,%s"anonymousId":%q,`+
			`"properties":{"product_id":%q,"category":%q,"name":%q,"price":%d.99,"quantity":%d},`+
			`"context":%s,"timestamp":%q,"receivedAt":%q}`,
		trackNames[w.rng.IntN(len(trackNames))], id, uid, p.anon, prod.id, prod.category, prod.name, 5+w.rng.IntN(50), 1+w.rng.IntN(3),
		w.context(p, "/products/"+prod.id), ts, recv)}
}

// identify is an identify of user p from its current anonymous id, with
// 5 to 8 traits, the email among them.
func (w *workload) identify(p *person) Record {
	id, ts, recv := w.next()
	first, last := firstNames[p.user%len(firstNames)], lastNames[(p.user/len(firstNames))%len(lastNames)]
	traits := fmt.Sprintf(`"email":"%s.%s.%d@example.com","first_name":%q,"last_name":%q,"plan":%q,"logins":%d`,
		first, last, p.user, first, last, p.plan, p.logins)
	extra := w.rng.IntN(4)
	if extra > 0 {
		traits += fmt.Sprintf(`,"name":"%s %s"`, first, last)
	}
	if extra > 1 {
		traits += fmt.Sprintf(`,"company":%q`, companies[p.user%len(companies)])
	}
	if extra > 2 {
		traits += `,"created_at":"2025-06-01T12:00:00Z"`
	}
	return Record{Source: "web", JSON: fmt.Appendf(nil,
		`{"type":"identify","messageId":%q,"userId":"usr_%07d","anonymousId":%q,"traits":{%s},"context":%s,`+
			`"timestamp":%q,"receivedAt":%q}`,
		id, p.user, p.anon, traits, w.context(p, "/account"), ts, recv)}
}
