package broker

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	pebblestore "github.com/inboxmq/inboxmq/inbox/pebble"
	"github.com/inboxmq/inboxmq/internal/dirlock"
)

// Backups. A backup is a directory laid out as a data_dir: restoring it
// is putting it in the place of data_dir (or pointing data_dir at it)
// while no broker runs. It holds the embedded store (StoreDir) and
// BackupManifest; the store is all the broker keeps in data_dir, so a
// backup holds everything: messages, read marks, cursors, sessions,
// retained messages, push schedule and events waiting for a sink.
//
// A running broker makes one with a Pebble checkpoint (Broker.Backup,
// served at POST /api/v1/admin/backup on the admin listener) and streams
// it as a tar; `inboxmq backup` unpacks it with ReceiveBackup. When no
// broker runs, BackupStopped copies the store's files instead.

// BackupManifestFile is the last entry of a backup stream and a file of
// every backup directory: its presence, with matching counts, is what
// tells a complete backup from a truncated one.
const BackupManifestFile = "inboxmq-backup.json"

// backupTmpPrefix names the checkpoints a broker makes inside data_dir
// (on its file system, so sstables are hard links, not copies) while it
// streams them. A broker that died mid-backup leaves one; the next start
// removes it.
const backupTmpPrefix = ".backup-"

// BackupManifest describes a backup.
type BackupManifest struct {
	Format  int       `json:"format"` // 1
	Created time.Time `json:"created"`
	// Online: taken from a running broker (a checkpoint); otherwise a
	// copy of a stopped broker's files.
	Online bool  `json:"online"`
	Files  int   `json:"files"` // besides the manifest
	Bytes  int64 `json:"bytes"`
}

// ErrNoEmbeddedStore: with the Redis store, data_dir holds nothing.
var ErrNoEmbeddedStore = errors.New("the broker keeps its data in Redis (store: redis): back it up with Redis's own tools")

// backupFunc is Backup for the admin API, nil without the embedded store.
func (b *Broker) backupFunc() func(context.Context, io.Writer) error {
	if _, ok := embeddedStore(b.store); !ok {
		return nil
	}
	return b.Backup
}

// Backup writes a consistent copy of the running broker's data to w, as
// a tar stream that ReceiveBackup reads: every write the store applied
// before the call, and none after. Clients are not paused.
func (b *Broker) Backup(ctx context.Context, w io.Writer) error {
	store, ok := embeddedStore(b.store)
	if !ok {
		return ErrNoEmbeddedStore
	}
	tmp, err := os.MkdirTemp(b.cfg.DataDir, backupTmpPrefix+"*")
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := store.Checkpoint(filepath.Join(tmp, StoreDir)); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return writeBackup(ctx, w, tmp, BackupManifest{Format: 1, Created: time.Now().UTC(), Online: true})
}

// removeBackupLeftovers removes the checkpoints of backups that a broker
// ended (crashed, killed) before it finished sending them.
func removeBackupLeftovers(dataDir string) error {
	old, err := filepath.Glob(filepath.Join(dataDir, backupTmpPrefix+"*"))
	if err != nil {
		return err
	}
	for _, d := range old {
		if err := os.RemoveAll(d); err != nil {
			return fmt.Errorf("remove an unfinished backup: %w", err)
		}
	}
	return nil
}

// BackupStopped copies the data_dir of a broker that is not running to
// dst, which must not exist. When a broker runs on dataDir it returns an
// error wrapping *dirlock.InUseError: ask that broker (Broker.Backup).
func BackupStopped(dataDir, dst string) (BackupManifest, error) {
	if _, err := os.Stat(filepath.Join(dataDir, StoreDir)); err != nil {
		return BackupManifest{}, fmt.Errorf("data dir %s holds no store: %w", dataDir, err)
	}
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		return BackupManifest{}, fmt.Errorf("%s already exists: back up into a new directory", dst)
	}
	lock, err := dirlock.Acquire(dataDir)
	if err != nil {
		return BackupManifest{}, err
	}
	m, err := copyStopped(dataDir, dst)
	if err != nil {
		_ = os.RemoveAll(dst)
	}
	return m, errors.Join(err, lock.Release())
}

func copyStopped(dataDir, dst string) (BackupManifest, error) {
	if err := pebblestore.CopyClosed(filepath.Join(dataDir, StoreDir), filepath.Join(dst, StoreDir)); err != nil {
		return BackupManifest{}, err
	}
	m := BackupManifest{Format: 1, Created: time.Now().UTC()}
	err := filepath.WalkDir(filepath.Join(dst, StoreDir), func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m.Files++
		m.Bytes += info.Size()
		return nil
	})
	if err != nil {
		return BackupManifest{}, err
	}
	return m, writeManifest(dst, m)
}

func writeManifest(dir string, m BackupManifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, BackupManifestFile), append(b, '\n'), 0o640)
}

// writeBackup writes the files under root as a tar stream, then the
// manifest with their count and size.
func writeBackup(ctx context.Context, w io.Writer, root string, m BackupManifest) error {
	tw := tar.NewWriter(w)
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		info, err := f.Stat()
		if err != nil {
			return err
		}
		if err := tw.WriteHeader(&tar.Header{Name: filepath.ToSlash(rel), Mode: 0o640, Size: info.Size(), ModTime: info.ModTime(), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		if _, err := io.Copy(tw, f); err != nil {
			return err
		}
		m.Files++
		m.Bytes += info.Size()
		return nil
	})
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	if err := tw.WriteHeader(&tar.Header{Name: BackupManifestFile, Mode: 0o640, Size: int64(len(b)), ModTime: m.Created, Typeflag: tar.TypeReg}); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if _, err := tw.Write(b); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	return nil
}

// ReceiveBackup unpacks a backup stream (Broker.Backup) into dst, which
// must not exist, and checks it is whole: the manifest came last and
// counts the files and bytes received. On any error dst is removed.
func ReceiveBackup(r io.Reader, dst string) (m BackupManifest, err error) {
	if _, err := os.Stat(dst); !errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("%s already exists: back up into a new directory", dst)
	}
	if err := os.MkdirAll(dst, 0o750); err != nil {
		return m, err
	}
	defer func() {
		if err != nil {
			_ = os.RemoveAll(dst)
		}
	}()
	tr := tar.NewReader(r)
	var files int
	var bytes int64
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return m, errors.New("the backup stream ended before its manifest: incomplete")
		}
		if err != nil {
			return m, fmt.Errorf("backup stream: %w", err)
		}
		if h.Typeflag != tar.TypeReg || !filepath.IsLocal(h.Name) || strings.Contains(h.Name, `\`) {
			return m, fmt.Errorf("backup stream: unexpected entry %q", h.Name)
		}
		if h.Name == BackupManifestFile {
			if err := json.NewDecoder(io.LimitReader(tr, 1<<16)).Decode(&m); err != nil {
				return m, fmt.Errorf("backup manifest: %w", err)
			}
			if m.Files != files || m.Bytes != bytes {
				return m, fmt.Errorf("backup manifest counts %d files, %d bytes; received %d, %d", m.Files, m.Bytes, files, bytes)
			}
			if _, err := tr.Next(); !errors.Is(err, io.EOF) {
				return m, fmt.Errorf("backup stream: entries after the manifest (%v)", err)
			}
			return m, writeManifest(dst, m)
		}
		n, err := receiveFile(tr, filepath.Join(dst, filepath.FromSlash(h.Name)))
		if err != nil {
			return m, err
		}
		files++
		bytes += n
	}
}

func receiveFile(r io.Reader, path string) (n int64, err error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o750); err != nil {
		return 0, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o640)
	if err != nil {
		return 0, err
	}
	defer func() { err = errors.Join(err, f.Close()) }()
	if n, err = io.Copy(f, r); err != nil {
		return n, fmt.Errorf("backup stream: %s: %w", path, err)
	}
	return n, f.Sync()
}
