// Package postgres loads events into a PostgreSQL warehouse in Segment's
// layout (internal/deliver/warehouse): one schema per source, tables and
// columns created and widened as events need them, each load one
// transaction that COPYs its rows into temporary tables and inserts them
// by id, so that loading the same events again adds nothing.
package postgres

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/confluxcdp/conflux/internal/deliver/warehouse"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Loader loads rows into one PostgreSQL warehouse. It is safe for
// concurrent use; loads into one schema are serialised by an advisory
// lock, so several loaders (several nodes) may share a warehouse.
type Loader struct {
	pool *pgxpool.Pool

	mu sync.Mutex
	// tables caches the columns of each table the loader has seen, by
	// "schema.table"; it is refreshed when a load fails.
	tables map[string]map[string]warehouse.Type
}

// Open connects to the warehouse at url (a PostgreSQL connection string)
// and checks that it answers.
func Open(ctx context.Context, url string) (*Loader, error) {
	l, err := New(url)
	if err != nil {
		return nil, err
	}
	if err := l.pool.Ping(ctx); err != nil {
		l.Close()
		return nil, fmt.Errorf("connecting to PostgreSQL warehouse: %w", err)
	}
	return l, nil
}

// New returns a loader of the warehouse at url without connecting: the
// first load does.
func New(url string) (*Loader, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("reading the PostgreSQL warehouse URL: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(context.Background(), cfg)
	if err != nil {
		return nil, fmt.Errorf("opening PostgreSQL warehouse: %w", err)
	}
	return &Loader{pool: pool, tables: map[string]map[string]warehouse.Type{}}, nil
}

// Close closes the connections.
func (l *Loader) Close() { l.pool.Close() }

// Stats is what one load did: rows written per table (not counting rows
// already there).
type Stats struct {
	Rows map[string]int64
}

// Load writes rows, all of source source, in one transaction: the schema,
// tables and columns they need, then the rows, each table's by id — event
// tables keep the first row of an id, users and accounts take the newer
// values. On error nothing is written.
func (l *Loader) Load(ctx context.Context, source string, rows []warehouse.Row) (Stats, error) {
	schema := warehouse.Name(source)
	if schema == "" {
		return Stats{}, fmt.Errorf("source %q has no usable schema name", source)
	}
	byTable := map[string][]warehouse.Row{}
	for _, r := range rows {
		byTable[r.Table] = append(byTable[r.Table], r)
	}
	stats := Stats{Rows: map[string]int64{}}
	err := pgx.BeginFunc(ctx, l.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('conflux.warehouse'), hashtext($1))`, schema); err != nil {
			return fmt.Errorf("locking schema %s: %w", schema, err)
		}
		if _, err := tx.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+ident(schema)); err != nil {
			return fmt.Errorf("creating schema %s: %w", schema, err)
		}
		for i, table := range slices.Sorted(maps.Keys(byTable)) {
			n, err := l.loadTable(ctx, tx, schema, table, fmt.Sprintf("conflux_load_%d", i), byTable[table])
			if err != nil {
				return err
			}
			stats.Rows[table] = n
		}
		return nil
	})
	if err != nil {
		l.forget(schema)
		return Stats{}, err
	}
	return stats, nil
}

// loadTable writes one table's rows.
func (l *Loader) loadTable(ctx context.Context, tx pgx.Tx, schema, table, tmp string, rows []warehouse.Row) (int64, error) {
	rows = dedupe(rows)
	want := map[string]warehouse.Type{}
	for _, r := range rows {
		for col, v := range r.Values {
			if have, ok := want[col]; ok {
				want[col] = warehouse.Widen(have, v.Type)
			} else {
				want[col] = v.Type
			}
		}
	}
	if rows[0].Upsert {
		want["received_at"] = warehouse.Timestamp // what the upsert compares, even when no row has it
	}
	cols, err := l.ensure(ctx, tx, schema, table, want)
	if err != nil {
		return 0, err
	}
	names := slices.Sorted(maps.Keys(want))
	if _, err := tx.Exec(ctx, `CREATE TEMP TABLE `+ident(tmp)+` (LIKE `+ident(schema)+`.`+ident(table)+`) ON COMMIT DROP`); err != nil {
		return 0, fmt.Errorf("creating the load table of %s.%s: %w", schema, table, err)
	}
	src := make([][]any, len(rows))
	for i, r := range rows {
		vals := make([]any, len(names))
		for j, c := range names {
			if v, ok := r.Values[c]; ok {
				vals[j] = convert(v, cols[c])
			}
		}
		src[i] = vals
	}
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{tmp}, names, pgx.CopyFromRows(src)); err != nil {
		return 0, fmt.Errorf("copying %d rows into %s.%s: %w", len(rows), schema, table, err)
	}
	list := identList(names)
	q := `INSERT INTO ` + ident(schema) + `.` + ident(table) + ` (` + list + `) SELECT ` + list + ` FROM ` + ident(tmp) + ` ON CONFLICT (id) DO NOTHING`
	if rows[0].Upsert {
		q = `INSERT INTO ` + ident(schema) + `.` + ident(table) + ` AS t (` + list + `) SELECT ` + list + ` FROM ` + ident(tmp) +
			` ON CONFLICT (id) DO UPDATE SET ` + upsertSet(names) + ` WHERE excluded.received_at >= t.received_at OR t.received_at IS NULL`
	}
	tag, err := tx.Exec(ctx, q)
	if err != nil {
		return 0, fmt.Errorf("inserting %d rows into %s.%s: %w", len(rows), schema, table, err)
	}
	return tag.RowsAffected(), nil
}

// upsertSet is the SET list of a latest-state table: a newer row's values,
// keeping a column the newer row does not set.
func upsertSet(names []string) string {
	var b strings.Builder
	for i, c := range names {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s = COALESCE(excluded.%s, t.%s)", ident(c), ident(c), ident(c))
	}
	return b.String()
}

// dedupe keeps one row per id: the first of an event table (all copies of
// an event are the same event), the newest by received_at of a
// latest-state table.
func dedupe(rows []warehouse.Row) []warehouse.Row {
	out := rows[:0:0]
	at := map[string]int{}
	for _, r := range rows {
		id, _ := r.Values["id"].V.(string)
		i, seen := at[id]
		if !seen {
			at[id] = len(out)
			out = append(out, r)
			continue
		}
		if r.Upsert && !received(r).Before(received(out[i])) {
			merged := maps.Clone(out[i].Values)
			maps.Copy(merged, r.Values)
			out[i].Values = merged
		}
	}
	return out
}

func received(r warehouse.Row) time.Time {
	t, _ := r.Values["received_at"].V.(time.Time)
	return t
}

// ensure creates the table and the columns want names, and widens those
// whose type cannot hold the new values; it returns the table's columns
// after that.
func (l *Loader) ensure(ctx context.Context, tx pgx.Tx, schema, table string, want map[string]warehouse.Type) (map[string]warehouse.Type, error) {
	have, err := l.columns(ctx, tx, schema, table)
	if err != nil {
		return nil, err
	}
	full := ident(schema) + "." + ident(table)
	if len(have) == 0 {
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+full+` (id text PRIMARY KEY)`); err != nil {
			return nil, fmt.Errorf("creating table %s.%s: %w", schema, table, err)
		}
		have["id"] = warehouse.Text
	}
	for _, col := range slices.Sorted(maps.Keys(want)) {
		typ, ok := have[col]
		switch {
		case !ok:
			if _, err := tx.Exec(ctx, `ALTER TABLE `+full+` ADD COLUMN IF NOT EXISTS `+ident(col)+` `+string(want[col])); err != nil {
				return nil, fmt.Errorf("adding column %s to %s.%s: %w", col, schema, table, err)
			}
			have[col] = want[col]
		case warehouse.Widen(typ, want[col]) != typ:
			// A value the column cannot hold: widen the column (bigint to
			// double precision, anything else to text), so that neither the
			// new value nor the old ones are lost.
			wide := warehouse.Widen(typ, want[col])
			if _, err := tx.Exec(ctx, `ALTER TABLE `+full+` ALTER COLUMN `+ident(col)+` TYPE `+string(wide)+` USING `+ident(col)+`::`+string(wide)); err != nil {
				return nil, fmt.Errorf("widening column %s of %s.%s to %s: %w", col, schema, table, wide, err)
			}
			have[col] = wide
		}
	}
	return have, nil
}

// columns returns the table's columns and types (none when it does not
// exist), from the cache or the catalog.
func (l *Loader) columns(ctx context.Context, tx pgx.Tx, schema, table string) (map[string]warehouse.Type, error) {
	key := schema + "." + table
	l.mu.Lock()
	cached, ok := l.tables[key]
	l.mu.Unlock()
	if ok {
		return cached, nil
	}
	rows, err := tx.Query(ctx, `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2`, schema, table)
	if err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", key, err)
	}
	cols := map[string]warehouse.Type{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			rows.Close()
			return nil, fmt.Errorf("reading the columns of %s: %w", key, err)
		}
		cols[name] = typeOf(typ)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reading the columns of %s: %w", key, err)
	}
	l.mu.Lock()
	l.tables[key] = cols
	l.mu.Unlock()
	return cols, nil
}

// forget drops the cached columns of schema's tables: a failed load may
// have rolled back what they say.
func (l *Loader) forget(schema string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for k := range l.tables {
		if strings.HasPrefix(k, schema+".") {
			delete(l.tables, k)
		}
	}
}

// typeOf maps information_schema's data_type to a warehouse type.
func typeOf(dataType string) warehouse.Type {
	switch dataType {
	case "bigint":
		return warehouse.Bigint
	case "double precision":
		return warehouse.Double
	case "boolean":
		return warehouse.Boolean
	case "timestamp with time zone":
		return warehouse.Timestamp
	}
	return warehouse.Text
}

// convert renders v for a column of type col (which holds v's type or a
// wider one).
func convert(v warehouse.Value, col warehouse.Type) any {
	if v.Type == col {
		return v.V
	}
	switch col {
	case warehouse.Double:
		if n, ok := v.V.(int64); ok {
			return float64(n)
		}
	case warehouse.Text:
		switch x := v.V.(type) {
		case time.Time:
			return x.Format(time.RFC3339Nano)
		case string:
			return x
		default:
			return fmt.Sprint(x)
		}
	}
	return v.V
}

func ident(s string) string { return pgx.Identifier{s}.Sanitize() }

func identList(names []string) string {
	out := make([]string, len(names))
	for i, n := range names {
		out[i] = ident(n)
	}
	return strings.Join(out, ", ")
}
