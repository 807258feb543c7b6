package store

import "fmt"

// migration is one version of the schema. See the package documentation for
// how to add one.
type migration struct {
	// version orders the migrations; versions start at 1 and increase by 1.
	version int
	// name says what the version does, for logs and schema_migrations.
	name string
	// sql is run on both engines, unless the engine has its own text below.
	sql string
	// sqlite and postgres, when set, replace sql on that engine.
	sqlite   string
	postgres string
}

// statements returns the SQL text that m runs on dialect d.
func (m migration) statements(d Dialect) string {
	switch {
	case d == SQLite && m.sqlite != "":
		return m.sqlite
	case d == Postgres && m.postgres != "":
		return m.postgres
	}
	return m.sql
}

// migrations returns the schema history, oldest first. Append new versions;
// never change one that has shipped.
func migrations() []migration {
	return []migration{
		{
			version: 1,
			name:    "workspace",
			// Times are BIGINT unix milliseconds UTC. BOOLEAN is a real type
			// on PostgreSQL and an integer 0/1 on SQLite; both scan into a
			// Go bool.
			sql: `
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value TEXT NOT NULL
);

-- config_version is bumped by every change to the workspace, in the same
-- transaction, so that readers can tell cheaply whether to reload.
CREATE TABLE config_version (
	singleton INTEGER PRIMARY KEY CHECK (singleton = 1),
	version   BIGINT NOT NULL
);
INSERT INTO config_version (singleton, version) VALUES (1, 0);

-- file_hash is the sha256 of the config-file declaration last applied to
-- the object (NULL when it did not come from the file).
CREATE TABLE sources (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	origin     TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash  TEXT,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- A source has exactly one current key (expires_at NULL) and any number of
-- retired keys still accepted until expires_at.
CREATE TABLE source_write_keys (
	write_key  TEXT PRIMARY KEY,
	source_id  TEXT NOT NULL REFERENCES sources (id) ON DELETE CASCADE,
	created_at BIGINT NOT NULL,
	expires_at BIGINT
);
CREATE UNIQUE INDEX source_write_keys_current ON source_write_keys (source_id) WHERE expires_at IS NULL;
CREATE INDEX source_write_keys_by_source ON source_write_keys (source_id, expires_at);

CREATE TABLE destinations (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	type       TEXT NOT NULL,
	enabled    BOOLEAN NOT NULL,
	settings   TEXT NOT NULL,
	origin     TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash  TEXT,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE destination_sources (
	destination_id TEXT NOT NULL REFERENCES destinations (id) ON DELETE CASCADE,
	source_id      TEXT NOT NULL REFERENCES sources (id) ON DELETE RESTRICT,
	PRIMARY KEY (destination_id, source_id)
);
CREATE INDEX destination_sources_by_source ON destination_sources (source_id);
`,
		},
		{
			version: 2,
			name:    "regulations",
			// suppression_log is the ordered history of suppress and
			// unsuppress changes; every node replays it past the last seq
			// it has seen to keep its in-memory set current. Writers lock
			// it so that seqs become visible in order.
			sqlite: `
CREATE TABLE regulations (
	id           TEXT PRIMARY KEY,
	type         TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	subject_ids  TEXT NOT NULL,
	status       TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE INDEX regulations_by_created ON regulations (created_at);

CREATE TABLE suppressions (
	user_id       TEXT PRIMARY KEY,
	regulation_id TEXT NOT NULL REFERENCES regulations (id),
	created_at    BIGINT NOT NULL
);

CREATE TABLE suppression_log (
	seq        INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    TEXT NOT NULL,
	suppressed BOOLEAN NOT NULL
);
`,
			postgres: `
CREATE TABLE regulations (
	id           TEXT PRIMARY KEY,
	type         TEXT NOT NULL,
	subject_type TEXT NOT NULL,
	subject_ids  TEXT NOT NULL,
	status       TEXT NOT NULL,
	created_at   BIGINT NOT NULL,
	updated_at   BIGINT NOT NULL
);
CREATE INDEX regulations_by_created ON regulations (created_at);

CREATE TABLE suppressions (
	user_id       TEXT PRIMARY KEY,
	regulation_id TEXT NOT NULL REFERENCES regulations (id),
	created_at    BIGINT NOT NULL
);

CREATE TABLE suppression_log (
	seq        BIGSERIAL PRIMARY KEY,
	user_id    TEXT NOT NULL,
	suppressed BOOLEAN NOT NULL
);
`,
		},
		{
			version: 3,
			name:    "rules",
			// Tracking plans, each source's plan and Schema Configuration,
			// destination filters and transformations. JSON documents are
			// TEXT, owned and validated by internal/config. Columns added
			// to existing tables are NULL or have a constant default, as
			// SQLite's ALTER TABLE … ADD COLUMN requires.
			sql: `
CREATE TABLE tracking_plans (
	id         TEXT PRIMARY KEY,
	name       TEXT NOT NULL,
	rules      TEXT NOT NULL,
	origin     TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash  TEXT,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

-- enforcement is the source's plan.Enforcement as JSON; the forwards name
-- the sources that violations and blocked events are written to.
ALTER TABLE sources ADD COLUMN tracking_plan_id TEXT REFERENCES tracking_plans (id);
ALTER TABLE sources ADD COLUMN enforcement TEXT NOT NULL DEFAULT '{}';
ALTER TABLE sources ADD COLUMN forward_violations_to TEXT REFERENCES sources (id);
ALTER TABLE sources ADD COLUMN forward_blocked_to TEXT REFERENCES sources (id);
CREATE INDEX sources_by_tracking_plan ON sources (tracking_plan_id);

-- filters is a JSON list of transform.Filter.
ALTER TABLE destinations ADD COLUMN filters TEXT NOT NULL DEFAULT '[]';

-- definition is the transform.Transformation as JSON. The ones of one
-- scope apply in the order (origin file first, then api), position:
-- file order for file ones, creation order for API ones.
CREATE TABLE transformations (
	id             TEXT PRIMARY KEY,
	source_id      TEXT NOT NULL REFERENCES sources (id),
	destination_id TEXT REFERENCES destinations (id),
	position       BIGINT NOT NULL,
	definition     TEXT NOT NULL,
	origin         TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash      TEXT,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL
);
CREATE INDEX transformations_by_source ON transformations (source_id);
CREATE INDEX transformations_by_destination ON transformations (destination_id);
`,
		},
		{
			version: 4,
			name:    "plan_violations",
			// Counts of tracking-plan violations per source, event and
			// field, added to by every node (count = count + delta) every
			// few seconds; read by the violations API. No foreign key to
			// sources: the counts outlive a deleted source's id harmlessly.
			sql: `
CREATE TABLE plan_violations (
	source_id      TEXT NOT NULL,
	event_type     TEXT NOT NULL,
	event_name     TEXT NOT NULL,
	violation_type TEXT NOT NULL,
	field          TEXT NOT NULL,
	count          BIGINT NOT NULL,
	first_seen     BIGINT NOT NULL,
	last_seen      BIGINT NOT NULL,
	description    TEXT NOT NULL,
	PRIMARY KEY (source_id, event_type, event_name, violation_type, field)
);
CREATE INDEX plan_violations_by_last_seen ON plan_violations (source_id, last_seen);
`,
		},
		{
			version: 5,
			name:    "delivery",
			// The delivery engine's state. delivery_positions: each
			// destination's position in the processed stream (every event
			// up to seq is delivered, filtered, awaiting retry in
			// delivery_jobs, or dead-lettered). delivery_jobs: events
			// awaiting retry (Centrifuge's awaiting_retry), keyed by the
			// processed sequence and record index ("<seq>.<index>", or
			// "r<dead letter id>" for a replayed one) so that reading a
			// message again after a crash inserts each job once.
			// dead_letters: discarded and expired events with the last
			// request and response. delivery_replays: what a replay moved.
			sqlite:   fmt.Sprintf(deliverySQL, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
			postgres: fmt.Sprintf(deliverySQL, "BIGSERIAL PRIMARY KEY", "BYTEA"),
		},
		{
			version: 6,
			name:    "destination_delivery",
			// Each destination's delivery options (concurrency, rate
			// limit, maximum retry age) as a JSON object owned by
			// internal/config; a field left out, as in '{}', takes the
			// delivery engine's default.
			sql: `
ALTER TABLE destinations ADD COLUMN delivery TEXT NOT NULL DEFAULT '{}';
`,
		},
		{
			version: 7,
			name:    "delivery_metrics",
			// Delivery metrics (internal/observe): counts of every outcome
			// per destination ('' for the stages before delivery), source,
			// bucket, event type and name, outcome and reason; and latency
			// histograms (le is the bucket's index in observe.LatencyBounds).
			// Every node adds to them (count = count + delta); MINUTE, HOUR
			// and DAY rows are written in the same transaction.
			sql: `
CREATE TABLE delivery_metrics (
	granularity    TEXT NOT NULL,
	destination_id TEXT NOT NULL,
	source_id      TEXT NOT NULL,
	bucket         BIGINT NOT NULL,
	event_type     TEXT NOT NULL,
	event_name     TEXT NOT NULL,
	outcome        TEXT NOT NULL,
	reason         TEXT NOT NULL,
	count          BIGINT NOT NULL,
	PRIMARY KEY (granularity, destination_id, source_id, bucket, event_type, event_name, outcome, reason)
);
-- Covering indexes: one destination's range, and every destination's.
CREATE INDEX delivery_metrics_by_destination ON delivery_metrics (granularity, destination_id, bucket, outcome, reason, count);
CREATE INDEX delivery_metrics_by_bucket ON delivery_metrics (granularity, bucket, outcome, reason, destination_id, count);

CREATE TABLE delivery_latency (
	granularity    TEXT NOT NULL,
	destination_id TEXT NOT NULL,
	source_id      TEXT NOT NULL,
	bucket         BIGINT NOT NULL,
	le             INTEGER NOT NULL,
	count          BIGINT NOT NULL,
	PRIMARY KEY (granularity, destination_id, source_id, bucket, le)
);
CREATE INDEX delivery_latency_by_destination ON delivery_latency (granularity, destination_id, bucket, le, count);
CREATE INDEX delivery_latency_by_bucket ON delivery_latency (granularity, bucket, le, destination_id, count);
`,
		},
		{
			version: 8,
			name:    "alerts",
			// Alert rules (internal/config) and their evaluation
			// (internal/observe/alert). alerts: the rules; notify is the
			// webhook as JSON ({"url", "headers"}), window_ms the window.
			// alert_states: each evaluated rule's state ('ok' or
			// 'firing') since a time, so that a restart neither forgets a
			// firing alert nor sends it again; no foreign key, the
			// evaluator drops the rows of deleted rules. alert_events: the
			// history of firing and resolved transitions, each with the
			// JSON body POSTed to the webhook and whether it was sent;
			// next_attempt_at is also the lease of the node sending it.
			sqlite:   fmt.Sprintf(alertsSQL, "INTEGER PRIMARY KEY AUTOINCREMENT"),
			postgres: fmt.Sprintf(alertsSQL, "BIGSERIAL PRIMARY KEY"),
		},
		{
			version: 9,
			name:    "identity",
			// The identity graph and profiles (internal/aggregate).
			// profiles: one row per profile of a collection ('users' or
			// 'accounts'); merged_into is the survivor of a profile merged
			// away (always the live one: merging a survivor re-points
			// them); first_* is the event that created it, last_* the last
			// event once its history is pruned. profile_ids: each
			// identifier (collection, type, value) belongs to one live
			// profile; first_seen is the event time it was gained at, for
			// the limits' time frames. profile_traits: one JSON document per
			// profile, each trait's latest value by event time with the
			// event that set it (internal/aggregate/profile/traits.go).
			// profile_events: the event history, the stored JSON of each
			// event with its source and messageId, kept for the retention.
			// profile_links: users to accounts. profile_merges: every merge,
			// with the event and identifier that caused it.
			// profile_positions: the stage's position in the processed log,
			// written in the same transaction as what it applied.
			// identity_settings: the workspace's rules (internal/config),
			// one row.
			sqlite:   fmt.Sprintf(identitySQL, "INTEGER PRIMARY KEY AUTOINCREMENT", "BLOB"),
			postgres: fmt.Sprintf(identitySQL, "BIGSERIAL PRIMARY KEY", "BYTEA"),
		},
		{
			version: 10,
			name:    "warehouse_syncs",
			// Each load of a warehouse destination
			// (internal/deliver/warehouse): when, for which source, what it
			// wrote (rows: a JSON object of rows per table) or why it failed.
			sqlite:   fmt.Sprintf(warehouseSyncsSQL, "INTEGER PRIMARY KEY AUTOINCREMENT"),
			postgres: fmt.Sprintf(warehouseSyncsSQL, "BIGSERIAL PRIMARY KEY"),
		},
		{
			version: 11,
			name:    "functions",
			// JavaScript functions (internal/config, run by
			// internal/function). functions: one row per function; version
			// is its latest saved version, deployed_version the one that
			// runs (0: none yet). function_versions: every saved version's
			// content; settings is a JSON object, allowed_hosts a JSON list
			// of strings, timeout_ms 0 for the runtime's default. Sources
			// name their source function and insert function, destinations
			// their insert function; a destination function is named in the
			// settings of a destination of type "function", which internal/
			// config checks.
			sql: `
CREATE TABLE functions (
	id               TEXT PRIMARY KEY,
	name             TEXT NOT NULL,
	kind             TEXT NOT NULL CHECK (kind IN ('source', 'destination', 'insert')),
	version          INTEGER NOT NULL,
	deployed_version INTEGER NOT NULL,
	origin           TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash        TEXT,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	CHECK (deployed_version >= 0 AND deployed_version <= version)
);

CREATE TABLE function_versions (
	function_id   TEXT NOT NULL REFERENCES functions (id) ON DELETE CASCADE,
	version       INTEGER NOT NULL,
	code          TEXT NOT NULL,
	settings      TEXT NOT NULL,
	allowed_hosts TEXT NOT NULL,
	timeout_ms    BIGINT NOT NULL,
	created_at    BIGINT NOT NULL,
	PRIMARY KEY (function_id, version)
);

ALTER TABLE sources ADD COLUMN function_id TEXT REFERENCES functions (id);
ALTER TABLE sources ADD COLUMN insert_function_id TEXT REFERENCES functions (id);
ALTER TABLE destinations ADD COLUMN insert_function_id TEXT REFERENCES functions (id);
CREATE INDEX sources_by_function ON sources (function_id);
CREATE INDEX sources_by_insert_function ON sources (insert_function_id);
CREATE INDEX destinations_by_insert_function ON destinations (insert_function_id);
`,
		},
		{
			version: 12,
			name:    "delivery_shards",
			// A destination's queue can be split into shards (internal/
			// deliver), each run by one node. A job belongs to the shard
			// that is shard % (the destination's shard count); the queue
			// that wrote it sets it, and a replay spreads its jobs. The
			// positions of a sharded queue are stored per shard, under
			// "<destination>/<k>-of-<n>" in delivery_positions.
			sql: `
ALTER TABLE delivery_jobs ADD COLUMN shard INTEGER NOT NULL DEFAULT 0;
`,
		},
	}
}

// alertsSQL is migration 8, with the event id type (%[1]s) of each
// engine.
const alertsSQL = `
CREATE TABLE alerts (
	id             TEXT PRIMARY KEY,
	name           TEXT NOT NULL,
	destination_id TEXT REFERENCES destinations (id),
	source_id      TEXT REFERENCES sources (id),
	enabled        BOOLEAN NOT NULL,
	kind           TEXT NOT NULL,
	threshold      DOUBLE PRECISION NOT NULL,
	window_ms      BIGINT NOT NULL,
	min_events     BIGINT NOT NULL,
	notify         TEXT NOT NULL,
	origin         TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash      TEXT,
	created_at     BIGINT NOT NULL,
	updated_at     BIGINT NOT NULL
);
CREATE INDEX alerts_by_destination ON alerts (destination_id);
CREATE INDEX alerts_by_source ON alerts (source_id);

CREATE TABLE alert_states (
	alert_id     TEXT PRIMARY KEY,
	state        TEXT NOT NULL CHECK (state IN ('ok', 'firing')),
	since        BIGINT NOT NULL,
	last_value   DOUBLE PRECISION,
	evaluated_at BIGINT NOT NULL
);

CREATE TABLE alert_events (
	id              %[1]s,
	alert_id        TEXT NOT NULL,
	status          TEXT NOT NULL CHECK (status IN ('firing', 'resolved')),
	occurred_at     BIGINT NOT NULL,
	body            TEXT NOT NULL,
	notify_status   TEXT NOT NULL CHECK (notify_status IN ('pending', 'sent', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at BIGINT NOT NULL DEFAULT 0,
	sent_at         BIGINT,
	last_error      TEXT NOT NULL DEFAULT ''
);
CREATE INDEX alert_events_pending ON alert_events (next_attempt_at) WHERE notify_status = 'pending';
CREATE INDEX alert_events_by_alert ON alert_events (alert_id, id);
CREATE INDEX alert_events_by_time ON alert_events (occurred_at);
`

// deliverySQL is migration 5, with the dead-letter id type (%[1]s) and
// the byte-string type (%[2]s) of each engine.
const deliverySQL = `
CREATE TABLE delivery_positions (
	destination_id TEXT PRIMARY KEY,
	seq            BIGINT NOT NULL,
	done           %[2]s NOT NULL,
	updated_at     BIGINT NOT NULL
);

CREATE TABLE delivery_jobs (
	destination_id   TEXT NOT NULL,
	id               TEXT NOT NULL,
	message_id       TEXT NOT NULL,
	source_id        TEXT NOT NULL,
	event_type       TEXT NOT NULL,
	event            TEXT NOT NULL,
	received_at      BIGINT NOT NULL,
	attempts         INTEGER NOT NULL,
	first_attempt_at BIGINT NOT NULL,
	next_attempt_at  BIGINT NOT NULL,
	last_status      INTEGER NOT NULL,
	last_reason      TEXT NOT NULL,
	last_error       TEXT NOT NULL,
	last_request     %[2]s NOT NULL,
	last_response    %[2]s NOT NULL,
	replay_id        TEXT,
	PRIMARY KEY (destination_id, id)
);
CREATE INDEX delivery_jobs_due ON delivery_jobs (destination_id, next_attempt_at);
CREATE INDEX delivery_jobs_by_message ON delivery_jobs (message_id);
CREATE INDEX delivery_jobs_by_replay ON delivery_jobs (replay_id);

CREATE TABLE dead_letters (
	id               %[1]s,
	destination_id   TEXT NOT NULL,
	message_id       TEXT NOT NULL,
	source_id        TEXT NOT NULL,
	event_type       TEXT NOT NULL,
	event            TEXT NOT NULL,
	received_at      BIGINT NOT NULL,
	reason           TEXT NOT NULL CHECK (reason IN ('discarded', 'expired')),
	status_code      INTEGER NOT NULL,
	error_reason     TEXT NOT NULL,
	error            TEXT NOT NULL,
	request          %[2]s NOT NULL,
	response         %[2]s NOT NULL,
	attempts         INTEGER NOT NULL,
	first_attempt_at BIGINT NOT NULL,
	failed_at        BIGINT NOT NULL,
	replay_id        TEXT
);
CREATE INDEX dead_letters_by_destination ON dead_letters (destination_id, failed_at);
CREATE INDEX dead_letters_by_message ON dead_letters (message_id);
CREATE INDEX dead_letters_by_replay ON dead_letters (replay_id);

CREATE TABLE delivery_replays (
	id          TEXT PRIMARY KEY,
	moved       BIGINT NOT NULL,
	handed_over BIGINT NOT NULL DEFAULT 0,
	created_at BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);
`

// identitySQL is migration 9, with the id type (%[1]s) and the
// byte-string type (%[2]s) of each engine.
const identitySQL = `
CREATE TABLE profiles (
	id               %[1]s,
	collection       TEXT NOT NULL CHECK (collection IN ('users', 'accounts')),
	merged_into      BIGINT,
	merges           INTEGER NOT NULL DEFAULT 0,
	created_at       BIGINT NOT NULL,
	updated_at       BIGINT NOT NULL,
	first_at         BIGINT NOT NULL,
	first_message_id TEXT NOT NULL,
	first_source_id  TEXT NOT NULL,
	last_at          BIGINT NOT NULL,
	last_message_id  TEXT NOT NULL,
	last_source_id   TEXT NOT NULL
);
CREATE INDEX profiles_by_survivor ON profiles (merged_into) WHERE merged_into IS NOT NULL;

CREATE TABLE profile_ids (
	collection TEXT NOT NULL,
	type       TEXT NOT NULL,
	value      TEXT NOT NULL,
	profile_id BIGINT NOT NULL,
	source_id  TEXT NOT NULL,
	first_seen BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (collection, type, value)
);
CREATE INDEX profile_ids_by_profile ON profile_ids (profile_id, type);

CREATE TABLE profile_traits (
	profile_id BIGINT PRIMARY KEY,
	traits     TEXT NOT NULL
);

CREATE TABLE profile_events (
	seq         %[1]s,
	profile_id  BIGINT NOT NULL,
	ts          BIGINT NOT NULL,
	received_at BIGINT NOT NULL,
	source_id   TEXT NOT NULL,
	message_id  TEXT NOT NULL,
	body        %[2]s NOT NULL
);
CREATE INDEX profile_events_by_profile ON profile_events (profile_id, ts);

CREATE TABLE profile_links (
	user_id    BIGINT NOT NULL,
	account_id BIGINT NOT NULL,
	created_at BIGINT NOT NULL,
	PRIMARY KEY (user_id, account_id)
);
CREATE INDEX profile_links_by_account ON profile_links (account_id);

CREATE TABLE profile_merges (
	id         %[1]s,
	collection TEXT NOT NULL,
	into_id    BIGINT NOT NULL,
	from_id    BIGINT NOT NULL,
	message_id TEXT NOT NULL,
	source_id  TEXT NOT NULL,
	id_type    TEXT NOT NULL,
	id_value   TEXT NOT NULL,
	at         BIGINT NOT NULL
);
CREATE INDEX profile_merges_by_into ON profile_merges (into_id);
CREATE INDEX profile_merges_by_from ON profile_merges (from_id);

CREATE TABLE profile_positions (
	name       TEXT PRIMARY KEY,
	seq        BIGINT NOT NULL,
	updated_at BIGINT NOT NULL
);

CREATE TABLE identity_settings (
	singleton  INTEGER PRIMARY KEY CHECK (singleton = 1),
	settings   TEXT NOT NULL,
	origin     TEXT NOT NULL CHECK (origin IN ('file', 'api')),
	file_hash  TEXT,
	updated_at BIGINT NOT NULL
);
`

// warehouseSyncsSQL is migration 10, with the id type (%[1]s) of each
// engine.
const warehouseSyncsSQL = `
CREATE TABLE warehouse_syncs (
	id             %[1]s,
	destination_id TEXT NOT NULL,
	source_id      TEXT NOT NULL,
	started_at     BIGINT NOT NULL,
	finished_at    BIGINT NOT NULL,
	status         TEXT NOT NULL CHECK (status IN ('success', 'failure')),
	events         BIGINT NOT NULL,
	rows_written   TEXT NOT NULL,
	error          TEXT NOT NULL
);
CREATE INDEX warehouse_syncs_by_destination ON warehouse_syncs (destination_id, id);
CREATE INDEX warehouse_syncs_by_time ON warehouse_syncs (started_at);
`
