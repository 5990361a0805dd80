package broker_test

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// POST /api/v1/admin/reload answers as the document says in each case: no
// config file (409), a valid file (200, with the report), an invalid one
// (422 with the reason, and the running configuration stays).
func TestOpenAPI_ReloadAnswers(t *testing.T) {
	sb := startSpecBroker(t)
	admin := mqtttest.Auth{Token: mqtttest.TokenWith(t, auth.Claims{UID: "20001", Role: acl.RoleAdmin, TTL: time.Hour})}
	reload := func(want int) []byte {
		return sb.do(t, call{"reload", adminListener, "POST", "/api/v1/admin/reload", admin, "", want, ""})
	}
	reload(409) // started without a file

	path := mqtttest.WriteConfig(t, t.TempDir(), "push: {after: 3m}")
	sb.b.SetConfigFile(path)
	var rep struct {
		Config           string
		Applied, Restart []string
	}
	if err := json.Unmarshal(reload(200), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Config != path || !slices.Contains(rep.Applied, "push.after") || !slices.Contains(rep.Restart, "data_dir") {
		t.Fatalf("report %+v: want push.after applied and data_dir to need a restart", rep)
	}

	if err := os.WriteFile(path, []byte("inbox:\n  retention: 7\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var refused struct {
		Error struct{ Code, Message string }
	}
	if err := json.Unmarshal(reload(422), &refused); err != nil {
		t.Fatal(err)
	}
	if refused.Error.Code != "invalid_config" || !strings.Contains(refused.Error.Message, "inbox.retention") {
		t.Fatalf("refusal %+v: want invalid_config naming inbox.retention", refused)
	}
}
