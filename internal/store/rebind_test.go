package store

import "testing"

func TestRebind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		query string
		want  string
	}{
		{"no placeholders", `SELECT 1`, `SELECT 1`},
		{"one", `SELECT * FROM t WHERE id = ?`, `SELECT * FROM t WHERE id = $1`},
		{"several", `INSERT INTO t (a, b, c) VALUES (?, ?,?)`, `INSERT INTO t (a, b, c) VALUES ($1, $2,$3)`},
		{"ten or more", `VALUES (?,?,?,?,?,?,?,?,?,?,?)`, `VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11)`},
		{"inside a literal", `SELECT '?' , x FROM t WHERE a = ?`, `SELECT '?' , x FROM t WHERE a = $1`},
		{"literal with doubled quote", `SELECT 'it''s ?' WHERE a = ? AND b = 'x?'`, `SELECT 'it''s ?' WHERE a = $1 AND b = 'x?'`},
		{"empty literal", `SELECT '' , ?`, `SELECT '' , $1`},
		{"quoted identifier", `SELECT "what?" FROM t WHERE a = ?`, `SELECT "what?" FROM t WHERE a = $1`},
		{"line comment", "SELECT a -- why?\nFROM t WHERE a = ?", "SELECT a -- why?\nFROM t WHERE a = $1"},
		{"block comment", `SELECT /* ? */ a FROM t WHERE a = ?`, `SELECT /* ? */ a FROM t WHERE a = $1`},
		{"minus is not a comment", `SELECT a - ? FROM t`, `SELECT a - $1 FROM t`},
		{"unterminated literal", `SELECT ? WHERE a = 'x?`, `SELECT $1 WHERE a = 'x?`},
		{"unterminated comment", `SELECT ? /* ?`, `SELECT $1 /* ?`},
		{"multibyte text", `SELECT 'é?' , ?, 'ü'`, `SELECT 'é?' , $1, 'ü'`},
	}
	pg := &DB{dialect: Postgres}
	lite := &DB{dialect: SQLite}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := pg.Rebind(tt.query); got != tt.want {
				t.Errorf("postgres Rebind(%q)\n got %q\nwant %q", tt.query, got, tt.want)
			}
			if got := lite.Rebind(tt.query); got != tt.query {
				t.Errorf("sqlite Rebind(%q) = %q, want it unchanged", tt.query, got)
			}
		})
	}
}

func TestMigrationsOrdered(t *testing.T) {
	t.Parallel()
	for i, m := range migrations() {
		if m.version != i+1 {
			t.Errorf("migrations()[%d] (%s) has version %d, want %d", i, m.name, m.version, i+1)
		}
		for _, d := range []Dialect{SQLite, Postgres} {
			if m.statements(d) == "" {
				t.Errorf("migration %d (%s) has no SQL for %s", m.version, m.name, d)
			}
		}
	}
}

func TestMigrationStatementsPerDialect(t *testing.T) {
	t.Parallel()
	shared := migration{sql: "shared"}
	split := migration{sql: "shared", sqlite: "lite", postgres: "pg"}
	for _, tt := range []struct {
		m    migration
		d    Dialect
		want string
	}{
		{shared, SQLite, "shared"},
		{shared, Postgres, "shared"},
		{split, SQLite, "lite"},
		{split, Postgres, "pg"},
	} {
		if got := tt.m.statements(tt.d); got != tt.want {
			t.Errorf("%+v.statements(%s) = %q, want %q", tt.m, tt.d, got, tt.want)
		}
	}
}
