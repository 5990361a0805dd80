package broker_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/api"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/broker"
	"github.com/inboxmq/inboxmq/internal/mqtttest"
)

// The OpenAPI document (api/openapi.json, served at /api/v1/openapi.json)
// is checked against a real broker over real HTTP with kin-openapi's
// openapi3filter: every answer below, successes and errors, must be an
// answer the document lists for the operation (status, headers, content
// type, body schema; the schemas forbid undocumented fields), and the
// operation must be one of the listener the request went to.

// listener names as the document tags operations.
const (
	publicListener = "public"
	adminListener  = "admin"
)

// specBroker is a running broker and its OpenAPI document, loaded from
// what the public listener serves.
type specBroker struct {
	b    *broker.Broker
	doc  *openapi3.T
	base map[string]string // listener -> http://host:port
}

func startSpecBroker(t *testing.T) *specBroker {
	t.Helper()
	b := mqtttest.Start(t, mqtttest.Config(t))
	sb := &specBroker{b: b, base: map[string]string{
		publicListener: "http://" + b.HTTPAddr(),
		adminListener:  "http://" + b.AdminAddr(),
	}}
	resp, err := http.Get(sb.base[publicListener] + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("GET /api/v1/openapi.json: %d %v", resp.StatusCode, err)
	}
	if !bytes.Equal(served, api.OpenAPI()) {
		t.Fatal("the public listener serves another document than the embedded one")
	}
	if sb.doc, err = openapi3.NewLoader().LoadFromData(served); err != nil {
		t.Fatalf("load the OpenAPI document: %v", err)
	}
	if err := sb.doc.Validate(context.Background()); err != nil {
		t.Fatalf("the OpenAPI document is not valid OpenAPI 3: %v", err)
	}
	return sb
}

// listenerOf is the listener an operation says it is served on; its tags
// and servers must agree.
func listenerOf(t *testing.T, doc *openapi3.T, op *openapi3.Operation) string {
	t.Helper()
	l, _ := op.Extensions["x-inboxmq-listener"].(string)
	if !slices.Contains(op.Tags, l) || op.Servers == nil || len(*op.Servers) != 1 {
		t.Fatalf("operation %s: listener %q, tags %v, servers %v disagree", op.OperationID, l, op.Tags, op.Servers)
	}
	wantServer := map[string]string{publicListener: doc.Servers[0].URL, adminListener: doc.Servers[1].URL}[l]
	if (*op.Servers)[0].URL != wantServer {
		t.Fatalf("operation %s on the %s listener names server %s", op.OperationID, l, (*op.Servers)[0].URL)
	}
	return l
}

// route finds the document's operation for a request sent to listener:
// the path template whose segments match ({name} matches any one), with
// the method, or with methodOf when the request's own method is not one of
// the path's (a 405 is listed by the operations of the path).
func (sb *specBroker) route(t *testing.T, listener, method, path string) (*routers.Route, map[string]string) {
	t.Helper()
	segs := strings.Split(path, "/")
	for tmpl, item := range sb.doc.Paths.Map() {
		tsegs := strings.Split(tmpl, "/")
		if len(tsegs) != len(segs) {
			continue
		}
		params := map[string]string{}
		match := true
		for i, s := range tsegs {
			if strings.HasPrefix(s, "{") {
				params[strings.Trim(s, "{}")] = segs[i]
			} else if s != segs[i] {
				match = false
				break
			}
		}
		if !match {
			continue
		}
		for m, op := range item.Operations() {
			if m == method && listenerOf(t, sb.doc, op) == listener {
				return &routers.Route{Spec: sb.doc, Path: tmpl, PathItem: item, Method: m, Operation: op}, params
			}
		}
	}
	t.Fatalf("the document has no %s %s on the %s listener", method, path, listener)
	return nil, nil
}

// call is one request of TestOpenAPI_RealResponsesMatch.
type call struct {
	name     string
	listener string
	method   string
	path     string // with the query
	auth     mqtttest.Auth
	body     string
	want     int
	specAs   string // the method whose operation lists the answer; "" = method
}

// do sends c and validates the answer against the document.
func (sb *specBroker) do(t *testing.T, c call) []byte {
	t.Helper()
	req, err := http.NewRequest(c.method, sb.base[c.listener]+c.path, strings.NewReader(c.body))
	if err != nil {
		t.Fatal(err)
	}
	if c.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	switch {
	case c.auth.User != "":
		req.SetBasicAuth(c.auth.User, c.auth.Password)
	case c.auth.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.auth.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != c.want {
		t.Fatalf("%s %s: %d %s, want %d", c.method, c.path, resp.StatusCode, clipBody(body), c.want)
	}
	specMethod := c.method
	if c.specAs != "" {
		specMethod = c.specAs
	}
	u, err := url.Parse(c.path)
	if err != nil {
		t.Fatal(err)
	}
	route, params := sb.route(t, c.listener, specMethod, u.Path)
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route},
		Status:                 resp.StatusCode,
		Header:                 resp.Header,
		Body:                   io.NopCloser(bytes.NewReader(body)),
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		t.Fatalf("%s %s answered %d %s, which the document does not allow: %v", c.method, c.path, resp.StatusCode, clipBody(body), err)
	}
	return body
}

func clipBody(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "..."
	}
	return string(b)
}

func TestOpenAPI_RealResponsesMatch(t *testing.T) {
	// Backups are tar streams: the document says "binary".
	openapi3filter.RegisterBodyDecoder("application/x-tar", openapi3filter.FileBodyDecoder)
	sb := startSpecBroker(t)
	sb.b.SetConfigFile(mqtttest.WriteConfig(t, t.TempDir())) // for the reload
	addr := sb.b.MQTTAddr()
	alice := mqtttest.MustV3(t, addr, "10001", mqtttest.Token(t, "10001"), mqtttest.V3Options{Subscribe: true})
	mqtttest.MustV3(t, addr, "10021", mqtttest.Token(t, "10021"), mqtttest.V3Options{Subscribe: true})
	var ids []string
	for _, peer := range []string{"10021", "10031", "10041"} {
		alice.MustPub(t, "im/sendmsg", fmt.Sprintf(`{"uid":%s,"msg":"hi %s","cid":"c-%s"}`, peer, peer, peer))
		ids = append(ids, alice.Inbox.NextMethod(t, "MsgSent", wait).Str("msgid"))
	}
	bob := mqtttest.Auth{Token: mqtttest.Token(t, "10021")}
	aliceAuth := mqtttest.Auth{Token: mqtttest.Token(t, "10001")}
	// Basic auth costs a bcrypt each: the admin calls use an admin token,
	// and only the calls that need a service account use one.
	admin := mqtttest.Auth{Token: mqtttest.TokenWith(t, auth.Claims{UID: "20001", Role: acl.RoleAdmin, TTL: time.Hour})}
	service := mqtttest.Auth{User: mqtttest.ServiceName, Password: mqtttest.ServicePassword}
	badPassword := mqtttest.Auth{User: mqtttest.AdminName, Password: "wrong"}
	foreign := mqtttest.Auth{Token: "not-a-token"}
	tooBig := `{"msgid":"` + strings.Repeat("1", 256<<10) + `"}`

	calls := []call{
		{"document", publicListener, "GET", "/api/v1/openapi.json", mqtttest.Auth{}, "", 200, ""},
		{"document, wrong method", publicListener, "POST", "/api/v1/openapi.json", mqtttest.Auth{}, "", 405, "GET"},
		{"healthz", publicListener, "GET", "/healthz", mqtttest.Auth{}, "", 200, ""},
		{"readyz", publicListener, "GET", "/readyz", mqtttest.Auth{}, "", 200, ""},
		{"metrics", adminListener, "GET", "/metrics", mqtttest.Auth{}, "", 200, ""},

		{"conversations", publicListener, "GET", "/api/v1/conversations", aliceAuth, "", 200, ""},
		{"conversations, a page", publicListener, "GET", "/api/v1/conversations?limit=1", aliceAuth, "", 200, ""},
		{"conversations, next page", publicListener, "GET", "/api/v1/conversations?limit=1&cursor=" + ids[2], aliceAuth, "", 200, ""},
		{"deny: conversations, bad cursor", publicListener, "GET", "/api/v1/conversations?cursor=abc", aliceAuth, "", 400, ""},
		{"deny: conversations, bad limit", publicListener, "GET", "/api/v1/conversations?limit=0", aliceAuth, "", 400, ""},
		{"deny: conversations, no credentials", publicListener, "GET", "/api/v1/conversations", mqtttest.Auth{}, "", 401, ""},
		{"deny: conversations, bad token", publicListener, "GET", "/api/v1/conversations", foreign, "", 401, ""},
		{"deny: conversations, wrong method", publicListener, "DELETE", "/api/v1/conversations", aliceAuth, "", 405, "GET"},

		{"messages", publicListener, "GET", "/api/v1/conversations/10001/messages?limit=10", bob, "", 200, ""},
		{"deny: messages, bad before", publicListener, "GET", "/api/v1/conversations/10001/messages?before=x", bob, "", 400, ""},
		{"deny: messages, bad peer", publicListener, "GET", "/api/v1/conversations/a%20b/messages", bob, "", 400, ""},

		{"mark read", publicListener, "POST", "/api/v1/conversations/10001/read", bob, `{"msgid":"` + ids[0] + `"}`, 200, ""},
		{"deny: mark read, unknown msgid", publicListener, "POST", "/api/v1/conversations/10001/read", bob, `{"msgid":"12345"}`, 404, ""},
		{"deny: mark read, bad JSON", publicListener, "POST", "/api/v1/conversations/10001/read", bob, `{"msgid":`, 400, ""},
		{"deny: mark read, too large", publicListener, "POST", "/api/v1/conversations/10001/read", bob, tooBig, 413, ""},
		{"deny: mark read, wrong method", publicListener, "GET", "/api/v1/conversations/10001/read", bob, "", 405, "POST"},

		{"deny: delete, not the sender", publicListener, "DELETE", "/api/v1/messages/" + ids[0], bob, "", 403, ""},
		{"deny: delete, no such message", publicListener, "DELETE", "/api/v1/messages/12345", aliceAuth, "", 404, ""},
		{"delete", publicListener, "DELETE", "/api/v1/messages/" + ids[1], aliceAuth, "", 200, ""},
		{"edit", publicListener, "PUT", "/api/v1/messages/" + ids[2], aliceAuth, `{"msg":"edited"}`, 200, ""},
		{"deny: edit, not the sender", publicListener, "PUT", "/api/v1/messages/" + ids[0], bob, `{"msg":"edited"}`, 403, ""},
		{"deny: edit, empty", publicListener, "PUT", "/api/v1/messages/" + ids[2], aliceAuth, `{"msg":""}`, 400, ""},

		{"block", publicListener, "PUT", "/api/v1/blocks/10031", bob, "", 200, ""},
		{"blocks", publicListener, "GET", "/api/v1/blocks", bob, "", 200, ""},
		{"unblock", publicListener, "DELETE", "/api/v1/blocks/10031", bob, "", 200, ""},
		{"deny: block, bad uid", publicListener, "PUT", "/api/v1/blocks/a%20b", bob, "", 400, ""},
		{"deny: blocks, wrong method", publicListener, "POST", "/api/v1/blocks", bob, "", 405, "GET"},
		{"edit", publicListener, "PUT", "/api/v1/messages/" + ids[2], aliceAuth, `{"msg":"hi again"}`, 200, ""},
		{"deny: edit, not the sender", publicListener, "PUT", "/api/v1/messages/" + ids[0], bob, `{"msg":"x"}`, 403, ""},
		{"deny: edit, no such message", publicListener, "PUT", "/api/v1/messages/12345", aliceAuth, `{"msg":"x"}`, 404, ""},
		{"deny: edit, empty", publicListener, "PUT", "/api/v1/messages/" + ids[2], aliceAuth, `{"msg":""}`, 400, ""},
		{"deny: edit, deleted", publicListener, "PUT", "/api/v1/messages/" + ids[1], aliceAuth, `{"msg":"x"}`, 404, ""},

		{"notices", publicListener, "GET", "/api/v1/notices", bob, "", 200, ""},
		{"deny: notices, bad before", publicListener, "GET", "/api/v1/notices?before=-1", bob, "", 400, ""},
		{"notices read", publicListener, "POST", "/api/v1/notices/read", bob, `{"msgid":"` + ids[0] + `"}`, 200, ""},
		{"deny: notices read, bad msgid", publicListener, "POST", "/api/v1/notices/read", bob, `{"msgid":"x"}`, 400, ""},
		{"unread", publicListener, "GET", "/api/v1/unread", bob, "", 200, ""},
		{"deny: unread, wrong method", publicListener, "PUT", "/api/v1/unread", bob, "", 405, "GET"},

		{"send message", adminListener, "POST", "/api/v1/messages", service, `{"from":10041,"uid":"10021","msg":"from the back-end","cid":"s-1"}`, 200, ""},
		{"deny: send message, user token", adminListener, "POST", "/api/v1/messages", bob, `{"from":10041,"uid":10021,"msg":"x"}`, 403, ""},
		{"deny: send message, bad password", adminListener, "POST", "/api/v1/messages", badPassword, `{"from":10041,"uid":10021,"msg":"x"}`, 401, ""},
		{"deny: send message, no from", adminListener, "POST", "/api/v1/messages", admin, `{"uid":10021,"msg":"x"}`, 400, ""},
		{"deny: send message, empty", adminListener, "POST", "/api/v1/messages", admin, `{"from":10041,"uid":10021,"msg":""}`, 400, ""},
		{"deny: send message, to itself", adminListener, "POST", "/api/v1/messages", admin, `{"from":10021,"uid":10021,"msg":"x"}`, 400, ""},
		{"deny: send message, wrong method", adminListener, "GET", "/api/v1/messages", admin, "", 405, "POST"},

		{"send notice", adminListener, "POST", "/api/v1/notices", admin, `{"uid":10021,"content":"shipped","msgtype":2}`, 202, ""},
		{"send notice to everyone", adminListener, "POST", "/api/v1/notices", admin, `{"content":"maintenance"}`, 202, ""},
		{"deny: send notice, empty uids", adminListener, "POST", "/api/v1/notices", admin, `{"uids":[],"content":"x"}`, 400, ""},
		{"deny: send notice, user token", adminListener, "POST", "/api/v1/notices", bob, `{"content":"x"}`, 403, ""},
		{"online", adminListener, "GET", "/api/v1/online?uid=10021", admin, "", 200, ""},
		{"deny: online, bad uid", adminListener, "GET", "/api/v1/online?uid=", admin, "", 400, ""},
		{"kick", adminListener, "POST", "/api/v1/kick", admin, `{"uid":10099}`, 200, ""},
		{"deny: kick, no uid", adminListener, "POST", "/api/v1/kick", admin, `{}`, 400, ""},
		{"deny: kick, no credentials", adminListener, "POST", "/api/v1/kick", mqtttest.Auth{}, `{"uid":10099}`, 401, ""},
		{"backup", adminListener, "POST", "/api/v1/admin/backup", admin, "", 200, ""},
		{"deny: backup, service account", adminListener, "POST", "/api/v1/admin/backup", service, "", 403, ""},
		{"deny: reload, service account", adminListener, "POST", "/api/v1/admin/reload", service, "", 403, ""},
		{"deny: reload, wrong method", adminListener, "GET", "/api/v1/admin/reload", admin, "", 405, "POST"},
		{"reload", adminListener, "POST", "/api/v1/admin/reload", admin, "", 200, ""},
	}
	answered := map[string]bool{} // "METHOD template" answered with a 2xx
	for _, c := range calls {
		t.Run(c.name, func(t *testing.T) {
			body := sb.do(t, c)
			if c.want == 405 && !strings.Contains(string(body), "method_not_allowed") {
				t.Errorf("405 body %s", body)
			}
			if c.want < 300 {
				u, _ := url.Parse(c.path)
				route, _ := sb.route(t, c.listener, c.method, u.Path)
				answered[c.method+" "+route.Path] = true
			}
		})
	}
	// Every operation of the document was answered above.
	for path, item := range sb.doc.Paths.Map() {
		for method := range item.Operations() {
			if !answered[method+" "+path] {
				t.Errorf("%s %s: no successful call checks it against the document", method, path)
			}
		}
	}

	// The answers that create things name what they created.
	t.Run("ids", func(t *testing.T) {
		for _, c := range calls {
			if c.want != 200 && c.want != 202 || c.method != "POST" || !strings.HasSuffix(c.path, "/messages") && !strings.HasSuffix(c.path, "/notices") {
				continue
			}
			var sent struct {
				MsgID string `json:"msgid"`
			}
			c.body = strings.ReplaceAll(c.body, `"s-1"`, `"s-2"`)
			if err := json.Unmarshal(sb.do(t, c), &sent); err != nil || sent.MsgID == "" {
				t.Errorf("%s: no msgid in the answer (%v)", c.name, err)
			}
		}
	})
}

// Every endpoint of package api is in the document, on the listener that
// serves it, and every operation of the document is served by a running
// broker on its listener, and not on the other one.
func TestOpenAPI_CoversEveryRoute(t *testing.T) {
	sb := startSpecBroker(t)
	type key struct{ method, path, listener string }
	inSpec := map[key]bool{}
	for path, item := range sb.doc.Paths.Map() {
		for method, op := range item.Operations() {
			inSpec[key{method, path, listenerOf(t, sb.doc, op)}] = true
		}
	}
	for _, e := range api.Endpoints(api.AllRoutes) {
		l := map[api.Routes]string{api.UserRoutes: publicListener, api.AdminRoutes: adminListener}[e.Routes]
		if !inSpec[key{e.Method, e.Path, l}] {
			t.Errorf("%s %s (%s listener) is served but not in the OpenAPI document", e.Method, e.Path, l)
		}
	}
	sample := strings.NewReplacer("{peer}", "10001", "{msgid}", "1", "{uid}", "10001")
	other := map[string]string{publicListener: adminListener, adminListener: publicListener}
	for k := range inSpec {
		path := sample.Replace(k.path)
		if status := probeStatus(t, k.method, sb.base[k.listener]+path); status == 404 || status == 405 {
			t.Errorf("%s %s is in the document for the %s listener, which answers %d", k.method, k.path, k.listener, status)
		}
		if status := probeStatus(t, k.method, sb.base[other[k.listener]]+path); status != 404 {
			t.Errorf("%s %s, on the %s listener only, answers %d on the %s listener, want 404", k.method, k.path, k.listener, status, other[k.listener])
		}
	}
}

// probeStatus sends a request without credentials nor body and returns the status.
func probeStatus(t *testing.T, method, url string) int {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}
