// Package store opens Conflux's SQL state store and keeps its schema current.
//
// The state store holds durable configuration and state: the workspace
// (sources, destinations), and later profiles, the identity graph, audiences,
// metric rollups and sync cursors. It runs on an SQLite file under the data
// directory by default, and on PostgreSQL when one machine is not enough. One
// code path serves both: queries are written once, with '?' placeholders, and
// [DB.Rebind] turns them into PostgreSQL's $1..$n.
//
// The package deliberately knows nothing about what the tables mean: each
// feature package (config, observe, …) owns its own queries against [DB.SQL].
//
// # Writing portable SQL
//
// Stick to the common subset of SQLite and PostgreSQL: TEXT, BIGINT, BOOLEAN,
// INTEGER PRIMARY KEY, ON CONFLICT … DO UPDATE, partial indexes. Store times
// as BIGINT unix milliseconds UTC. Do not use PostgreSQL's jsonb '?' operators
// (Rebind would take them for placeholders); use jsonb_exists instead. Rebind
// leaves '?' alone inside single-quoted literals, double-quoted identifiers
// and comments, but not inside E'…' escape strings or $$…$$ bodies.
//
// Write through [DB.InTx]. On SQLite every transaction it starts is BEGIN
// IMMEDIATE: it takes the write lock up front, so concurrent writers queue on
// the busy timeout instead of failing when a read lock cannot be upgraded.
//
// # Adding a migration
//
// The schema is the ordered list returned by migrations() in migrations.go.
// To change it, append one entry with the next version number:
//
//	{
//		version: 2,
//		name:    "delivery_attempts",
//		sql:     `CREATE TABLE delivery_attempts (…);`,
//	},
//
// When the two engines need different text (BLOB vs BYTEA, an identity
// column), set sqlite and postgres instead of sql. Never edit or renumber a
// version that has shipped: databases in the field have already applied it.
// Each version runs in its own transaction and is recorded in
// schema_migrations, so a restart skips it; on PostgreSQL a transaction-level
// advisory lock makes concurrent starts apply each version exactly once.
// [Open] applies whatever is pending before it returns.
package store
