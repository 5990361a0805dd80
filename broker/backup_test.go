package broker

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A backup stream cut anywhere, or tampered with, is refused and leaves no
// directory behind; the whole stream unpacks to the same files.
func TestReceiveBackupRejectsIncompleteStreams(t *testing.T) {
	src := t.TempDir()
	files := map[string]string{"inbox/000002.sst": strings.Repeat("s", 3000), "inbox/MANIFEST-000001": "manifest", "inbox/OPTIONS-000003": "options"}
	for name, data := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	var stream bytes.Buffer
	if err := writeBackup(context.Background(), &stream, src, BackupManifest{Format: 1, Online: true}); err != nil {
		t.Fatal(err)
	}
	whole := stream.Bytes()

	dst := filepath.Join(t.TempDir(), "whole")
	m, err := ReceiveBackup(bytes.NewReader(whole), dst)
	if err != nil {
		t.Fatal(err)
	}
	if m.Files != len(files) || !m.Online {
		t.Errorf("manifest %+v, want %d files, online", m, len(files))
	}
	for name, data := range files {
		got, err := os.ReadFile(filepath.Join(dst, filepath.FromSlash(name)))
		if err != nil || string(got) != data {
			t.Errorf("%s: %q, %v", name, got, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dst, BackupManifestFile)); err != nil {
		t.Errorf("manifest not kept: %v", err)
	}
	if _, err := ReceiveBackup(bytes.NewReader(whole), dst); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Errorf("receive into an existing dir: %v", err)
	}

	// Every 512-byte tar block boundary, and a cut inside a block, up to
	// the manifest's last byte (past it, everything has arrived).
	end := bytes.LastIndexByte(whole, '}') + 1
	for cut := 0; cut < end; cut += 512 {
		for _, at := range []int{cut, cut + 100, end - 1} {
			if at >= end {
				continue
			}
			dst := filepath.Join(t.TempDir(), "cut")
			if _, err := ReceiveBackup(bytes.NewReader(whole[:at]), dst); err == nil {
				t.Fatalf("a stream cut at byte %d of %d was accepted", at, len(whole))
			}
			if _, err := os.Stat(dst); !os.IsNotExist(err) {
				t.Fatalf("a stream cut at byte %d left %s behind", at, dst)
			}
		}
	}
}

// A checkpoint left in data_dir by a broker that died while sending a
// backup is removed at the next start.
func TestBackupLeftoversRemovedAtStart(t *testing.T) {
	cfg := DefaultConfig()
	cfg.DataDir = t.TempDir()
	cfg.Auth.JWTSecret = strings.Repeat("s", 32)
	cfg.Listeners.MQTT.Address = "127.0.0.1:0"
	cfg.Listeners.WebSocket.Address, cfg.Listeners.HTTP.Address, cfg.Listeners.Admin.Address = "", "", ""
	left := filepath.Join(cfg.DataDir, backupTmpPrefix+"123", StoreDir)
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := os.Stat(filepath.Dir(left)); !os.IsNotExist(err) {
		t.Fatalf("leftover checkpoint still there: %v", err)
	}
}
