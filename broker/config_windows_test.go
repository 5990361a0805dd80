package broker

import (
	"strings"
	"testing"
	"time"
)

// inbox.delete_window and inbox.edit_window: defaults, values, refusals.
func TestParseConfig_EditAndDeleteWindows(t *testing.T) {
	t.Setenv(SecretEnv, "")
	for _, tc := range []struct {
		name         string
		inbox        string // lines under inbox:
		edit, delete time.Duration
		err          string // "" accepted
	}{
		{name: "defaults: edits for a day, deletes without limit", edit: 24 * time.Hour, delete: 0},
		{name: "set", inbox: "  edit_window: 15m\n  delete_window: 2m\n", edit: 15 * time.Minute, delete: 2 * time.Minute},
		{name: "editing off", inbox: "  edit_window: 0s\n", edit: 0, delete: 0},
		{name: "deny: negative edit window", inbox: "  edit_window: -1s\n", err: "inbox.edit_window"},
		{name: "deny: negative delete window", inbox: "  delete_window: -5m\n", err: "inbox.delete_window"},
		{name: "deny: not a duration", inbox: "  edit_window: a day\n", err: "edit_window"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := ParseConfig([]byte("auth:\n  anonymous: true\ninbox:\n" + tc.inbox))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Inbox.EditWindow != tc.edit || cfg.Inbox.DeleteWindow != tc.delete {
				t.Fatalf("edit_window %s, delete_window %s; want %s, %s", cfg.Inbox.EditWindow, cfg.Inbox.DeleteWindow, tc.edit, tc.delete)
			}
		})
	}
}
