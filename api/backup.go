package api

import (
	"io"
	"net/http"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/messaging"
)

// backup streams a copy of the broker's data (Options.Backup) as
// application/x-tar; `inboxmq backup` reads it. It holds every message of
// every user, so only admin accounts may take it, not service accounts.
// A failure after the first byte aborts the connection: the reader sees a
// truncated stream, which it rejects, never a short backup.
func (a *api) backup(w http.ResponseWriter, r *http.Request, by messaging.Actor) {
	if by.Role != acl.RoleAdmin {
		writeError(w, http.StatusForbidden, "forbidden", "backups need an admin account")
		return
	}
	if a.Backup == nil {
		writeError(w, http.StatusConflict, "no_embedded_store",
			"this broker keeps its data in Redis: back it up with Redis's own tools")
		return
	}
	// A large store takes longer to send than the listener's timeouts.
	rc := http.NewResponseController(w)
	if err := rc.SetWriteDeadline(time.Time{}); err != nil {
		a.Log.Warn("backup: write deadline not lifted", "error", err)
	}
	start := time.Now()
	cw := &countingWriter{w: w, header: func() { w.Header().Set("Content-Type", "application/x-tar") }}
	err := a.Backup(r.Context(), cw)
	if err == nil {
		a.Log.Info("backup sent", "by", by.UID, "bytes", cw.n, "took", time.Since(start).Round(time.Millisecond))
		return
	}
	a.Log.Error("backup failed", "by", by.UID, "bytes_sent", cw.n, "error", err)
	if cw.n == 0 {
		writeError(w, http.StatusInternalServerError, "backup_failed", "the backup failed; the broker's log says why")
		return
	}
	panic(http.ErrAbortHandler) // closes the connection without ending the stream
}

// countingWriter counts what was written, and sets the headers just
// before the first write.
type countingWriter struct {
	w      io.Writer
	n      int64
	header func()
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if c.n == 0 && c.header != nil {
		c.header()
		c.header = nil
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
