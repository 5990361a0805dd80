package pebblestore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/inboxmq/inboxmq/inbox"
)

// A checkpoint taken while appends go on holds every append that
// returned before it started, and a gap-free prefix of each inbox: no
// message without the ones before it.
func TestCheckpointWhileWriting(t *testing.T) {
	ctx := context.Background()
	s := openStore(t, t.TempDir(), inbox.Options{})
	var acked atomic.Int64 // appends returned so far
	stop, busy := make(chan struct{}), make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	var once sync.Once
	go func() {
		defer wg.Done()
		defer once.Do(func() { close(busy) }) // also when an append fails
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindDirect, Content: strconv.Itoa(i)}}); err != nil {
				t.Error(err)
				return
			}
			acked.Store(int64(i + 1))
			if i == 50 {
				once.Do(func() { close(busy) })
			}
		}
	}()
	<-busy // writes are in flight
	before := acked.Load()
	dst := filepath.Join(t.TempDir(), "copy")
	if err := s.Checkpoint(dst); err != nil {
		t.Fatal(err)
	}
	close(stop)
	wg.Wait()
	if err := s.Checkpoint(dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("checkpoint over an existing dir = %v, want ErrExist", err)
	}

	c := openStore(t, dst, inbox.Options{})
	got := mustReadAll(t, c, "bob")
	if int64(len(got)) < before {
		t.Fatalf("checkpoint holds %d messages, but %d were appended before it", len(got), before)
	}
	for i, m := range got {
		if m.Content != strconv.Itoa(i) || m.Seq != uint64(i+1) {
			t.Fatalf("message %d of the copy: seq %d content %q (a hole or reorder)", i, m.Seq, m.Content)
		}
	}
	t.Logf("%d appended before the checkpoint, %d in it", before, len(got))
}

// CopyClosed refuses a store that is open, copies a closed one that opens
// with its data, and leaves the source as it was.
func TestCopyClosed(t *testing.T) {
	ctx := context.Background()
	src := t.TempDir()
	s := openStore(t, src, inbox.Options{})
	if _, err := s.Append(ctx, []inbox.Message{{UID: "bob", Kind: inbox.KindDirect, Content: "kept"}}); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "copy")
	if err := CopyClosed(src, dst); err == nil {
		t.Fatal("CopyClosed of an open store succeeded")
	}
	if _, err := os.Stat(dst); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("refused copy left %s: %v", dst, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := CopyClosed(filepath.Join(t.TempDir(), "none"), dst); err == nil {
		t.Fatal("CopyClosed of a directory without a store succeeded")
	}
	if err := CopyClosed(src, dst); err != nil {
		t.Fatal(err)
	}
	if err := CopyClosed(src, dst); !errors.Is(err, os.ErrExist) {
		t.Errorf("copy over an existing dir = %v, want ErrExist", err)
	}
	for _, dir := range []string{dst, src} {
		got := mustReadAll(t, openStore(t, dir, inbox.Options{}), "bob")
		if len(got) != 1 || got[0].Content != "kept" {
			t.Fatalf("%s holds %+v, want the one message", dir, got)
		}
	}
}
