package dedup_test

import (
	"fmt"
	"log"
	"os"
	"time"

	"github.com/confluxcdp/conflux/internal/process/dedup"
)

// A partition checks each event of a group, publishes the group, then
// commits the group's ids with the ingest sequence the group reaches.
func ExampleIndex() {
	dir, err := os.MkdirTemp("", "dedup-example-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	ix, err := dedup.Open(dedup.Options{Dir: dir, ExpectedKeysPerBucket: 10_000})
	if err != nil {
		log.Fatal(err)
	}
	defer ix.Close()

	group := []string{"msg-1", "msg-2"}
	var entries []dedup.Entry
	for _, id := range group {
		dup, err := ix.Contains([]byte(id))
		if err != nil {
			log.Fatal(err)
		}
		if !dup {
			entries = append(entries, dedup.Entry{ID: []byte(id), At: time.Now()})
		}
	}
	// … publish the group to `processed`, await its ack, then:
	if err := ix.Commit(entries, 1043); err != nil {
		log.Fatal(err)
	}

	dup, _ := ix.Contains([]byte("msg-1"))
	fmt.Println("msg-1 again is a duplicate:", dup)
	dup, _ = ix.Contains([]byte("msg-3"))
	fmt.Println("msg-3 is a duplicate:", dup)
	fmt.Println("checkpoint:", ix.Checkpoint())
	// Output:
	// msg-1 again is a duplicate: true
	// msg-3 is a duplicate: false
	// checkpoint: 1043
}
