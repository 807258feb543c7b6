package profile_test

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"iter"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/aggregate/identity"
	"github.com/confluxcdp/conflux/internal/aggregate/profile"
	"github.com/confluxcdp/conflux/internal/store"
	"github.com/confluxcdp/conflux/internal/store/storetest"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

const (
	// apiProfiles are the user profiles in the store, each with 3 or 4
	// identifiers (user_id, email, anonymous_id, and a device id for 30%)
	// and apiTraits traits.
	apiProfiles = 1_000_000
	apiTraits   = 8
	// apiEventsPer events are in the history of every profile, spread
	// over the week before the build (the store holds 5 million).
	apiEventsPer = 5
	// apiRequests are timed per endpoint and iteration, one at a time,
	// each for a random profile, after apiWarmRequests untimed.
	apiRequests     = 5000
	apiWarmRequests = 500
	// apiBuildVersion changes when the generated data does, to rebuild
	// the cached SQLite file (2: one traits document per profile, events
	// with their source and message ids).
	apiBuildVersion = 2
	// apiCacheFor is how long a cached SQLite file is used: its events
	// span the week before it was built, and must stay in the space's
	// 14-day retention to be listed.
	apiCacheFor = 6 * 24 * time.Hour
)

// BenchmarkProfileAPI is the Profile API's latency for a profile's traits
// and events in a store of 1,000,000 profiles: apiRequests sequential GETs
// of random profiles (by user_id) through the real handlers over HTTP, the
// store warm in the OS's page cache. It reports p50, p99 and p999 in
// milliseconds (p999 of 5,000 requests is their 5th slowest).
//
// The store holds the rows the aggregation stage would have written,
// loaded in bulk (the resolver would take hours). SQLite's is made with
// multi-row INSERTs (about a minute) and cached under os.TempDir() between
// runs: 4.5 GB, in conflux-bench-profiles-<key>, rebuilt when absent,
// older than 6 days or of another schema (a rebuild deletes the others).
// PostgreSQL's is loaded with COPY into a fresh schema each run (about a
// minute).
func BenchmarkProfileAPI(b *testing.B) {
	b.Run("sqlite", func(b *testing.B) {
		db, note := sqliteProfiles(b)
		benchAPI(b, db, note)
	})
	b.Run("postgres", func(b *testing.B) {
		db, note := postgresProfiles(b)
		benchAPI(b, db, note)
	})
}

// benchAPI runs the endpoints' sub-benchmarks over db; note (how the store
// was built) goes into the first one's log, where it is shown.
func benchAPI(b *testing.B, db *store.DB, note string) {
	rules := identity.DefaultRules()
	space := profile.Space{ID: "default", AccessToken: "tok", Retention: 14 * 24 * time.Hour}
	api := profile.NewAPI(profile.NewReader(db), func() profile.Space { return space }, func() *identity.Rules { return rules }, nil)
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	client := srv.Client()

	for _, ep := range []struct {
		name string
		want int // items in the answer
	}{{"traits", apiTraits}, {"events", apiEventsPer}} {
		b.Run(ep.name, func(b *testing.B) {
			rng := rand.New(rand.NewPCG(7, uint64(len(ep.name))))
			var body []byte
			get := func() time.Duration {
				p := 1 + rng.IntN(apiProfiles)
				req, err := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/spaces/default/collections/users/profiles/user_id:%s/%s",
					srv.URL, userID(p), ep.name), nil)
				if err != nil {
					b.Fatal(err)
				}
				req.SetBasicAuth("tok", "")
				start := time.Now()
				resp, err := client.Do(req)
				if err == nil {
					body, err = io.ReadAll(resp.Body)
					_ = resp.Body.Close()
				}
				took := time.Since(start)
				if err != nil {
					b.Fatal(err)
				}
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("GET %s: %s: %s", req.URL.Path, resp.Status, body)
				}
				return took
			}
			for range apiWarmRequests {
				get()
			}
			if n := answerItems(b, body); n != ep.want {
				b.Fatalf("%s answered %d items, want %d: %s", ep.name, n, ep.want, body)
			}
			lat := make([]time.Duration, 0, apiRequests*b.N)
			b.ResetTimer()
			for range b.N {
				for range apiRequests {
					lat = append(lat, get())
				}
			}
			b.StopTimer()
			slices.Sort(lat)
			q := func(f float64) float64 { return float64(lat[int(f*float64(len(lat)-1))].Microseconds()) / 1000 }
			var sum time.Duration
			for _, d := range lat {
				sum += d
			}
			b.ReportMetric(q(0.50), "p50-ms")
			b.ReportMetric(q(0.99), "p99-ms")
			b.ReportMetric(q(0.999), "p999-ms")
			b.ReportMetric(float64(len(lat))/sum.Seconds(), "req/s")
			if ep.name == "traits" {
				b.Log(note)
			}
			b.Logf("%s at %d profiles: p50 %.2f ms p99 %.2f ms p999 %.2f ms max %.2f ms mean %.2f ms (%d requests, one at a time)",
				ep.name, apiProfiles, q(0.50), q(0.99), q(0.999), q(1), float64(sum.Microseconds())/1000/float64(len(lat)), len(lat))
		})
	}
}

// answerItems counts the traits or events of an answer.
func answerItems(b *testing.B, body []byte) int {
	var a struct {
		Traits map[string]any `json:"traits"`
		Data   []any          `json:"data"`
	}
	if err := json.Unmarshal(body, &a); err != nil {
		b.Fatalf("answer %s: %v", body, err)
	}
	return len(a.Traits) + len(a.Data)
}

// sqliteProfiles returns the SQLite store of apiProfiles profiles, built
// or found in the cache, and a line on how.
func sqliteProfiles(b *testing.B) (*store.DB, string) {
	key, schema := schemaKey(b)
	dir := filepath.Join(os.TempDir(), "conflux-bench-profiles-"+key)
	path := filepath.Join(dir, "conflux.db")
	marker := path + ".built"
	built := time.Time{}
	if s, err := os.ReadFile(marker); err == nil {
		if ms, err := strconv.ParseInt(strings.TrimSpace(string(s)), 10, 64); err == nil {
			built = time.UnixMilli(ms)
		}
	}
	var note string
	if time.Since(built) > apiCacheFor {
		// This one, unfinished or too old, and those of other schemas.
		old, _ := filepath.Glob(filepath.Join(os.TempDir(), "conflux-bench-profiles-*"))
		for _, d := range old {
			if err := os.RemoveAll(d); err != nil {
				b.Fatal(err)
			}
		}
		built = time.Now()
		start := time.Now()
		note = buildSQLite(b, path, built)
		if err := os.WriteFile(marker, []byte(strconv.FormatInt(built.UnixMilli(), 10)), 0o600); err != nil {
			b.Fatal(err)
		}
		note = fmt.Sprintf("built %s in %.0f s (%s)", path, time.Since(start).Seconds(), note)
	} else {
		note = fmt.Sprintf("using %s, built %s", path, built.Format(time.RFC3339))
	}
	warmPageCache(b, dir)
	db, err := store.Open(b.Context(), store.Options{SQLitePath: path})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	if got := sqliteSchema(b, db.SQL()); got != schema {
		b.Fatalf("the schema of %s is not the migrations' (delete it to rebuild):\n%s\nwant:\n%s", path, got, schema)
	}
	return db, note
}

// schemaKey identifies the SQLite schema the migrations make now, and the
// generator's version: a cached file of another is rebuilt. It returns
// the schema too.
func schemaKey(b *testing.B) (string, string) {
	db, err := store.Open(b.Context(), store.Options{SQLitePath: filepath.Join(b.TempDir(), "schema.db")})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	schema := sqliteSchema(b, db.SQL())
	h := sha256.Sum256(fmt.Appendf(nil, "%d %d %d\n%s", apiBuildVersion, apiProfiles, apiEventsPer, schema))
	return hex.EncodeToString(h[:6]), schema
}

// sqliteSchema is every table's and index's definition in db.
func sqliteSchema(b *testing.B, db *sql.DB) string {
	var schema string
	if err := db.QueryRow(`SELECT group_concat(type || ' ' || name || ' ' || coalesce(sql, ''), char(10))
	FROM (SELECT * FROM sqlite_master ORDER BY type, name)`).Scan(&schema); err != nil {
		b.Fatal(err)
	}
	return schema
}

// warmPageCache reads the files of dir once, so that the figures are of a
// store in the OS's page cache whether it was just built or not.
func warmPageCache(b *testing.B, dir string) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		b.Fatal(err)
	}
	for _, e := range ents {
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			b.Fatal(err)
		}
		_, err = io.Copy(io.Discard, f)
		_ = f.Close()
		if err != nil {
			b.Fatal(err)
		}
	}
}

// buildSQLite makes the store at path: migrated by store.Open, then the
// rows inserted over a connection without journal or syncs, the secondary
// indexes dropped during the load and created again as they were. It
// returns what took how long.
func buildSQLite(b *testing.B, path string, built time.Time) string {
	db, err := store.Open(b.Context(), store.Options{SQLitePath: path})
	if err != nil {
		b.Fatal(err)
	}
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	conn, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(OFF)&_pragma=synchronous(OFF)&_pragma=cache_size(-1048576)&_pragma=temp_store(MEMORY)")
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Close()
	conn.SetMaxOpenConns(1)
	ctx := b.Context()
	indexes := dropIndexes(b, ctx, conn, `SELECT sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name LIKE 'profile%'`,
		`SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name LIKE 'profile%'`)
	var took []string
	for _, t := range profileTables(built) {
		start := time.Now()
		n, err := insertRows(ctx, conn, t, func(i int) string { return "?" })
		if err != nil {
			b.Fatalf("loading %s: %v", t.name, err)
		}
		took = append(took, fmt.Sprintf("%d %s rows in %.0f s", n, t.name, time.Since(start).Seconds()))
	}
	start := time.Now()
	for _, q := range indexes {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	if _, err := conn.ExecContext(ctx, `PRAGMA journal_mode = WAL`); err != nil {
		b.Fatal(err)
	}
	return strings.Join(append(took, fmt.Sprintf("indexes in %.0f s", time.Since(start).Seconds())), ", ")
}

// dropIndexes returns the definitions list returns, then drops the
// indexes names returns.
func dropIndexes(b *testing.B, ctx context.Context, conn *sql.DB, list, names string) []string {
	var defs, drop []string
	for q, into := range map[string]*[]string{list: &defs, names: &drop} {
		rows, err := conn.QueryContext(ctx, q)
		if err != nil {
			b.Fatal(err)
		}
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				b.Fatal(err)
			}
			*into = append(*into, s)
		}
		if err := rows.Close(); err != nil {
			b.Fatal(err)
		}
	}
	for _, n := range drop {
		if _, err := conn.ExecContext(ctx, `DROP INDEX `+n); err != nil {
			b.Fatal(err)
		}
	}
	return defs
}

// insertRows inserts t's rows with multi-row INSERTs of up to 500 rows in
// transactions of about 200,000; ph renders the i-th placeholder (from 1).
func insertRows(ctx context.Context, conn *sql.DB, t table, ph func(i int) string) (int, error) {
	const perStmt, perTx = 500, 200_000
	stmt := func(rows int) string {
		var sb strings.Builder
		sb.WriteString("INSERT INTO " + t.name + " (" + strings.Join(t.cols, ", ") + ") VALUES ")
		n := 0
		for r := range rows {
			if r > 0 {
				sb.WriteString(", ")
			}
			sb.WriteByte('(')
			for c := range t.cols {
				if c > 0 {
					sb.WriteString(", ")
				}
				n++
				sb.WriteString(ph(n))
			}
			sb.WriteByte(')')
		}
		return sb.String()
	}
	var tx *sql.Tx
	var full *sql.Stmt
	args := make([]any, 0, perStmt*len(t.cols))
	total, inTx := 0, 0
	flush := func(commit bool) error {
		if len(args) > 0 {
			var err error
			if len(args) == cap(args) {
				if full == nil {
					if full, err = tx.PrepareContext(ctx, stmt(perStmt)); err != nil {
						return err
					}
				}
				_, err = full.ExecContext(ctx, args...)
			} else {
				_, err = tx.ExecContext(ctx, stmt(len(args)/len(t.cols)), args...)
			}
			if err != nil {
				return err
			}
			args = args[:0]
		}
		if commit && tx != nil {
			if full != nil {
				_ = full.Close()
				full = nil
			}
			err := tx.Commit()
			tx = nil
			return err
		}
		return nil
	}
	defer func() {
		if tx != nil {
			_ = tx.Rollback()
		}
	}()
	for row := range t.rows {
		if tx == nil {
			var err error
			if tx, err = conn.BeginTx(ctx, nil); err != nil {
				return total, err
			}
			inTx = 0
		}
		args = append(args, row...)
		total++
		inTx++
		if len(args) == cap(args) {
			if err := flush(inTx >= perTx); err != nil {
				return total, err
			}
		}
	}
	return total, flush(true)
}

// postgresProfiles returns a PostgreSQL store of apiProfiles profiles,
// loaded with COPY into a fresh schema, secondary indexes created after
// the load, then vacuumed and analyzed as autovacuum would have.
func postgresProfiles(b *testing.B) (*store.DB, string) {
	db, err := store.Open(b.Context(), store.Options{PostgresURL: storetest.PostgresSchema(b)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = db.Close() })
	ctx := b.Context()
	conn := db.SQL()
	start := time.Now()
	built := time.Now()
	indexes := dropIndexes(b, ctx, conn,
		`SELECT indexdef FROM pg_indexes WHERE schemaname = current_schema() AND tablename LIKE 'profile%' AND indexname NOT LIKE '%_pkey'`,
		`SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename LIKE 'profile%' AND indexname NOT LIKE '%_pkey'`)
	c, err := conn.Conn(ctx)
	if err != nil {
		b.Fatal(err)
	}
	var took []string
	for _, t := range profileTables(built) {
		tstart := time.Now()
		var n int64
		err := c.Raw(func(dc any) error {
			next, stop := iter.Pull(t.rows)
			defer stop()
			var err error
			n, err = dc.(*stdlib.Conn).Conn().CopyFrom(ctx, pgx.Identifier{t.name}, t.cols, pgx.CopyFromFunc(func() ([]any, error) {
				row, ok := next()
				if !ok {
					return nil, nil
				}
				return row, nil
			}))
			return err
		})
		if err != nil {
			b.Fatalf("loading %s: %v", t.name, err)
		}
		took = append(took, fmt.Sprintf("%d %s rows in %.0f s", n, t.name, time.Since(tstart).Seconds()))
	}
	_ = c.Close()
	istart := time.Now()
	stmts := append(indexes, `SELECT setval(pg_get_serial_sequence('profiles', 'id'), `+strconv.Itoa(apiProfiles)+`)`,
		`VACUUM ANALYZE profiles, profile_ids, profile_traits, profile_events`)
	for _, q := range stmts {
		if _, err := conn.ExecContext(ctx, q); err != nil {
			b.Fatalf("%s: %v", q, err)
		}
	}
	took = append(took, fmt.Sprintf("indexes, vacuum and analyze in %.0f s", time.Since(istart).Seconds()))
	return db, fmt.Sprintf("built in PostgreSQL in %.0f s (%s)", time.Since(start).Seconds(), strings.Join(took, ", "))
}

// table is one table's generated rows.
type table struct {
	name string
	cols []string
	rows iter.Seq[[]any]
}

func userID(p int) string { return fmt.Sprintf("usr_%07d", p) }

var (
	benchFirst   = []string{"ada", "grace", "alan", "edsger", "barbara", "donald", "margaret", "ken", "radia", "linus", "frances", "john"}
	benchLast    = []string{"lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "hamilton", "thompson", "perlman", "torvalds", "allen", "backus"}
	benchPlans   = []string{"free", "starter", "pro", "enterprise"}
	benchCompany = []string{"Initech", "Globex", "Umbrella", "Hooli", "Acme Corp", "Stark Industries"}
	benchEvents  = []string{"Product Viewed", "Product Added", "Product Clicked", "Checkout Started", "Product List Viewed"}
)

// person is what the rows of profile p say about its user.
type person struct {
	first, last, email, anon, device, devType string
	created                                   int64
}

func personOf(p int, built time.Time) person {
	h := splitmix(uint64(p))
	h2 := splitmix(h)
	first, last := benchFirst[p%len(benchFirst)], benchLast[(p/len(benchFirst))%len(benchLast)]
	pr := person{first: first, last: last, email: fmt.Sprintf("%s.%s.%d@example.com", first, last, p),
		anon:    fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", h>>32, (h>>16)&0xffff, h&0xfff, (h2>>48)&0x3fff|0x8000, h2&0xffffffffffff),
		created: built.Add(-30 * 24 * time.Hour).UnixMilli(),
	}
	pr.created += int64(p) * (20 * 24 * 3600 * 1000 / apiProfiles) // over the 20 days before the week of events
	if h%10 < 3 {
		pr.device, pr.devType = strings.ToUpper(fmt.Sprintf("%016x%016x", h2, h)), "ios"
	}
	return pr
}

func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// benchTrait is one key of a profile's traits document, as the stage
// stores it (profile's storedTrait).
type benchTrait struct {
	V json.RawMessage `json:"v"`
	T int64           `json:"t"`
	M string          `json:"m"`
	S string          `json:"s"`
}

// profileTables generates what the aggregation stage would have written
// for apiProfiles users, each first seen by an identify (its traits'
// source, and the profile row's first and last event) and then with
// apiEventsPer tracks over the week before built, in time order across
// profiles as the stage appends them. The metadata's last event is the
// newest track, from the history.
func profileTables(built time.Time) []table {
	week := built.Add(-7 * 24 * time.Hour).UnixMilli()
	step := 7 * 24 * 3600 * 1000 / int64(apiProfiles*apiEventsPer)
	eventAt := func(p, r int) int64 { return week + int64(r*apiProfiles+p-1)*step }
	msg := func(p, r int) string { return fmt.Sprintf("%016x", splitmix(uint64(p)<<8|uint64(r))) }
	const src = "web"
	return []table{
		{"profiles", []string{"id", "collection", "merges", "created_at", "updated_at", "first_at", "first_message_id", "first_source_id",
			"last_at", "last_message_id", "last_source_id"}, func(yield func([]any) bool) {
			for p := 1; p <= apiProfiles; p++ {
				pr := personOf(p, built)
				if !yield([]any{p, "users", 0, pr.created, pr.created, pr.created, msg(p, 255), src, pr.created, msg(p, 255), src}) {
					return
				}
			}
		}},
		{"profile_ids", []string{"collection", "type", "value", "profile_id", "source_id", "first_seen", "created_at"}, func(yield func([]any) bool) {
			for p := 1; p <= apiProfiles; p++ {
				pr := personOf(p, built)
				ids := [][2]string{{"user_id", userID(p)}, {"email", pr.email}, {"anonymous_id", pr.anon}}
				if pr.device != "" {
					ids = append(ids, [2]string{"ios.id", pr.device})
				}
				for _, id := range ids {
					if !yield([]any{"users", id[0], id[1], p, src, pr.created, pr.created}) {
						return
					}
				}
			}
		}},
		{"profile_traits", []string{"profile_id", "traits"}, func(yield func([]any) bool) {
			doc := make(map[string]benchTrait, apiTraits)
			for p := 1; p <= apiProfiles; p++ {
				pr := personOf(p, built)
				q := strconv.Quote
				traits := [apiTraits][2]string{
					{"company", q(benchCompany[p%len(benchCompany)])}, {"created_at", q(time.UnixMilli(pr.created).UTC().Format(time.RFC3339))},
					{"email", q(pr.email)}, {"first_name", q(pr.first)}, {"last_name", q(pr.last)},
					{"logins", strconv.Itoa(p % 97)}, {"name", q(pr.first + " " + pr.last)}, {"plan", q(benchPlans[p%len(benchPlans)])},
				}
				clear(doc)
				for _, t := range traits {
					doc[t[0]] = benchTrait{V: json.RawMessage(t[1]), T: pr.created, M: msg(p, 255), S: src}
				}
				b, err := json.Marshal(doc) // keys in order, as the stage writes it
				if err != nil {
					panic(err)
				}
				if !yield([]any{p, string(b)}) {
					return
				}
			}
		}},
		{"profile_events", []string{"profile_id", "ts", "received_at", "source_id", "message_id", "body"}, func(yield func([]any) bool) {
			for r := range apiEventsPer {
				for p := 1; p <= apiProfiles; p++ {
					at := eventAt(p, r)
					if !yield([]any{p, at, at + 80, src, msg(p, r), eventBody(p, r, at, personOf(p, built), msg(p, r))}) {
						return
					}
				}
			}
		}},
	}
}

// eventBody is a track as the processing stage stores it, about 550
// bytes.
func eventBody(p, r int, at int64, pr person, msgID string) []byte {
	const ms = "2006-01-02T15:04:05.000Z07:00"
	ts, recv := time.UnixMilli(at).UTC().Format(ms), time.UnixMilli(at+80).UTC().Format(ms)
	ctx := fmt.Sprintf(`{"library":{"name":"analytics.js","version":"2.11.1"},"page":{"path":"/products/p_%d","title":"Shop"},"ip":"203.0.113.%d",`+
		`"userAgent":"Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/120.0.0.0"}`, 1000+p%97, p%255)
	if pr.device != "" {
		ctx = fmt.Sprintf(`{"library":{"name":"analytics-ios","version":"4.1.8"},"app":{"name":"Shop","version":"3.2.1","build":"321"},`+
			`"device":{"id":%q,"type":%q,"manufacturer":"Apple","model":"iPhone15,2"},"os":{"name":"iOS","version":"17.2"},"ip":"198.51.100.%d"}`,
			pr.device, pr.devType, p%255)
	}
	return fmt.Appendf(nil, `{"type":"track","event":%q,"messageId":%q,"userId":%q,"anonymousId":%q,`+
		`"properties":{"product_id":"p_%d","category":"Games","name":"Uno Card Game","price":%d.99,"quantity":%d},`+
		`"context":%s,"timestamp":%q,"receivedAt":%q}`,
		benchEvents[(p+r)%len(benchEvents)], msgID, userID(p), pr.anon, 1000+p%97, 5+p%50, 1+r%3, ctx, ts, recv)
}
