package broker_test

import (
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A reload applies what it can and names every changed key it could not,
// by its path, each time: a second reload does not hide the first's.
func TestReload_NamesKeysNeedingRestart(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Log.Level = "info"
	b, logs := mqtttest.StartLogged(t, cfg)

	next := cfg
	next.Limits.MessageRate = cfg.Limits.MessageRate + 1 // applied
	next.Inbox.Retention = cfg.Inbox.Retention + time.Hour
	next.Push.After = 5 * time.Minute
	next.Web.DevLogin = !cfg.Web.DevLogin
	for round := 1; round <= 2; round++ {
		if err := b.Reload(next); err != nil {
			t.Fatal(err)
		}
		line := logs.Wait(t, 5*time.Second, "configuration changes not applied")
		for _, key := range []string{"inbox.retention", "push.after", "web.dev_login"} {
			if !strings.Contains(line, key) {
				t.Errorf("round %d: %q not named in %q", round, key, line)
			}
		}
		if strings.Contains(line, "limits.message_rate") {
			t.Errorf("round %d: an applied key named as needing a restart: %q", round, line)
		}
		logs.Reset()
	}

	// Only applicable changes: nothing to warn about.
	more := next
	more.Limits.MessageBurst = next.Limits.MessageBurst + 1
	more.Inbox, more.Push, more.Web = cfg.Inbox, cfg.Push, cfg.Web // back to what runs
	if err := b.Reload(more); err != nil {
		t.Fatal(err)
	}
	logs.Wait(t, 5*time.Second, "configuration reloaded")
	if s := logs.String(); strings.Contains(s, "not applied") {
		t.Fatalf("warned although every change applied: %s", s)
	}
}
