package archive

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/confluxcdp/conflux/internal/event"
	"github.com/confluxcdp/conflux/internal/stream"
	"github.com/confluxcdp/conflux/internal/stream/streamtest"
	"github.com/parquet-go/parquet-go"
)

func publish(t *testing.T, l *stream.Log, src string, from, n int, at time.Time) {
	t.Helper()
	var data []byte
	for i := from; i < from+n; i++ {
		data = event.AppendRecord(data, src, fmt.Appendf(nil,
			`{"type":"track","event":"E%d","messageId":"m%05d","userId":"u%d","receivedAt":%q}`, i%3, i, i%7, at.Format(time.RFC3339Nano)))
	}
	if _, err := l.JetStream().Publish(context.Background(), stream.ProcessedSubject, data); err != nil {
		t.Fatal(err)
	}
}

// readAll reads every part under dir.
func readAll(t *testing.T, dir string) (map[string]Row, map[string]int) {
	t.Helper()
	rows := map[string]Row{}
	perDir := map[string]int{}
	err := filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Ext(path) != ".parquet" {
			return err
		}
		got, err := parquet.ReadFile[Row](path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, filepath.Dir(path))
		for _, r := range got {
			if _, dup := rows[r.MessageID]; dup {
				t.Errorf("%s archived twice", r.MessageID)
			}
			rows[r.MessageID] = r
			perDir[rel]++
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return rows, perDir
}

func run(t *testing.T, a *Archiver) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	return func() { cancel(); <-done }
}

func TestArchive(t *testing.T) {
	l := streamtest.New(t)
	dir := t.TempDir()
	h10 := time.Date(2026, 12, 1, 10, 30, 0, 0, time.UTC)
	publish(t, l, "web", 0, 50, h10)
	publish(t, l, "app", 50, 20, h10)
	publish(t, l, "web", 70, 30, h10.Add(time.Hour))
	a, err := New(Options{Log: l, Dir: dir, FlushEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, a)
	for deadline := time.Now().Add(10 * time.Second); a.Position() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("position %d, want 3", a.Position())
		}
	}
	stop()
	rows, perDir := readAll(t, dir)
	if len(rows) != 100 {
		t.Fatalf("%d rows archived, want 100", len(rows))
	}
	for d, want := range map[string]int{"source=web/hour=2026-12-01T10": 50, "source=app/hour=2026-12-01T10": 20, "source=web/hour=2026-12-01T11": 30} {
		if perDir[d] != want {
			t.Errorf("%s: %d rows, want %d (all: %v)", d, perDir[d], want, perDir)
		}
	}
	r := rows["m00004"]
	if r.SourceID != "web" || r.Type != "track" || r.Event != "E1" || r.UserID != "u4" || r.ReceivedAt != h10.UnixMilli() || r.JSON == "" {
		t.Errorf("row %+v", r)
	}

	// A crash after a part was renamed but before the position moved: the
	// part is deleted at the next start and written again, once.
	publish(t, l, "web", 100, 10, h10)
	stray := filepath.Join(dir, "source=web", "hour=2026-12-01T10", "part-4-4.parquet")
	if err := writeFile(stray, []Row{{MessageID: "m00100"}}); err != nil {
		t.Fatal(err)
	}
	a, err = New(Options{Log: l, Dir: dir, FlushEvery: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("the part past the position was not deleted: %v", err)
	}
	stop = run(t, a)
	for deadline := time.Now().Add(10 * time.Second); a.Position() < 4; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("position %d, want 4", a.Position())
		}
	}
	stop()
	if rows, _ := readAll(t, dir); len(rows) != 110 {
		t.Errorf("%d rows archived, want 110", len(rows))
	}
}
