package web_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// A broker with web.enabled serves the page beside the API, tells it the
// WebSocket port it really bound, and its dev login mints tokens that the
// broker accepts.
func TestBroker_ServesWebClient(t *testing.T) {
	cfg := mqtttest.Config(t)
	cfg.Web.Enabled, cfg.Web.DevLogin = true, true
	b := mqtttest.Start(t, cfg)
	h := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}

	page := h.Do(t, "GET", "/", mqtttest.Auth{}, nil)
	if page.Status != 200 || !strings.Contains(string(page.Raw), "<title>inboxmq</title>") {
		t.Fatalf("GET / = %d %.100s", page.Status, page.Raw)
	}
	if r := h.Do(t, "GET", "/healthz", mqtttest.Auth{}, nil); r.Status != 200 {
		t.Fatalf("healthz beside the page: %d", r.Status)
	}
	if r := h.Do(t, "GET", "/api/v1/nope", mqtttest.Auth{}, nil); r.ErrorCode() != "not_found" {
		t.Fatalf("api beside the page: %d %s", r.Status, r.Raw)
	}

	_, port, err := net.SplitHostPort(b.WebSocketAddr())
	if err != nil {
		t.Fatal(err)
	}
	conf := h.Do(t, "GET", "/web-config.json", mqtttest.Auth{}, nil)
	ws, _ := conf.Body["websocket"].(map[string]any)
	if gotPort, _ := ws["port"].(json.Number); conf.Status != 200 || gotPort.String() != port || ws["path"] != "/mqtt" || conf.Body["dev_login"] != true {
		t.Fatalf("web-config.json = %s, websocket port %s", conf.Raw, port)
	}

	tok := h.Do(t, "POST", "/dev/token", mqtttest.Auth{}, map[string]string{"uid": "10001"})
	if tok.Status != 415 { // mqtttest sends no content type: refused like a form post
		t.Fatalf("dev token without JSON content type: %d", tok.Status)
	}
	token := devToken(t, b.HTTPAddr(), "10001")
	c, err := mqtttest.ConnectV3WS("ws://"+b.WebSocketAddr()+"/mqtt", "10001", token, mqtttest.V3Options{Subscribe: true})
	if err != nil {
		t.Fatalf("dev token refused over WebSocket: %v", err)
	}
	defer c.Disconnect(100)
	if r := h.Do(t, "GET", "/api/v1/unread", mqtttest.Auth{Token: token}, nil); r.Status != 200 {
		t.Fatalf("dev token refused by the API: %d %s", r.Status, r.Raw)
	}
	// Account names are not token subjects.
	if status, body := postJSON(t, b.HTTPAddr(), "/dev/token", `{"uid":"admin"}`); status != 400 || !strings.Contains(body, "bad_uid") {
		t.Fatalf("dev token for the admin account: %d %s", status, body)
	}
}

func TestBroker_WebClientOff(t *testing.T) {
	for _, tc := range []struct {
		name              string
		enabled, devLogin bool
		page, token       int
	}{
		{"web off (default)", false, false, 404, 404},
		{"dev login off", true, false, 200, 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mqtttest.Config(t)
			cfg.Web.Enabled, cfg.Web.DevLogin = tc.enabled, tc.devLogin
			b := mqtttest.Start(t, cfg)
			h := mqtttest.HTTP{Base: "http://" + b.HTTPAddr()}
			if r := h.Do(t, "GET", "/", mqtttest.Auth{}, nil); r.Status != tc.page {
				t.Fatalf("GET / = %d, want %d", r.Status, tc.page)
			}
			if status, body := postJSON(t, b.HTTPAddr(), "/dev/token", `{"uid":"10001"}`); status != tc.token {
				t.Fatalf("POST /dev/token = %d %s, want %d", status, body, tc.token)
			}
		})
	}
}

func devToken(t *testing.T, addr, uid string) string {
	t.Helper()
	status, body := postJSON(t, addr, "/dev/token", `{"uid":`+strconv.Quote(uid)+`}`)
	if status != 200 {
		t.Fatalf("dev token: %d %s", status, body)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil || out.Token == "" {
		t.Fatalf("dev token answer %s: %v", body, err)
	}
	return out.Token
}

func postJSON(t *testing.T, addr, path, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(raw)
}
