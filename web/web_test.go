package web

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

func testHandler(opts Options) http.Handler {
	if opts.WebSocketPath == "" {
		opts.WebSocketPath = "/mqtt"
	}
	opts.Log = slog.New(slog.DiscardHandler)
	return Handler(opts)
}

func do(t *testing.T, h http.Handler, method, target string, header map[string]string, body string) *http.Response {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	req.Host = "127.0.0.1:8080"
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Result()
}

func readBody(t *testing.T, r *http.Response) []byte {
	t.Helper()
	b, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func checkSecurityHeaders(t *testing.T, r *http.Response, wantWS string) {
	t.Helper()
	csp := r.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "connect-src 'self'" + wantWS + ";"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe") {
		t.Errorf("CSP allows unsafe sources: %q", csp)
	}
	if got := r.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q", got)
	}
	if got := r.Header.Get("Referrer-Policy"); got != "no-referrer" {
		t.Errorf("Referrer-Policy = %q", got)
	}
}

func TestHandler_Static(t *testing.T) {
	h := testHandler(Options{WebSocketPort: 8083})
	for _, tc := range []struct {
		name, method, path string
		status             int
		ctype              string
	}{
		{"page at root", "GET", "/", 200, "text/html; charset=utf-8"},
		{"page by name", "GET", "/index.html", 200, "text/html; charset=utf-8"},
		{"script", "GET", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"styles", "GET", "/style.css", 200, "text/css; charset=utf-8"},
		{"icon", "GET", "/favicon.svg", 200, "image/svg+xml"},
		{"mqtt.js", "GET", "/vendor/mqtt.min.js", 200, "text/javascript; charset=utf-8"},
		{"head", "HEAD", "/app.js", 200, "text/javascript; charset=utf-8"},
		{"unknown file", "GET", "/nope.js", 404, ""},
		{"no directory listing", "GET", "/vendor/", 404, ""},
		{"no sources", "GET", "/web.go", 404, ""},
		{"no static prefix", "GET", "/static/index.html", 404, ""},
		{"post refused", "POST", "/", 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, tc.method, tc.path, nil, "")
			body := readBody(t, r)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d, want %d", r.StatusCode, tc.status)
			}
			checkSecurityHeaders(t, r, " ws://127.0.0.1:8083")
			if tc.status != 200 {
				return
			}
			if got := r.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type = %q, want %q", got, tc.ctype)
			}
			if got := r.Header.Get("Cache-Control"); got != "no-cache" {
				t.Errorf("Cache-Control = %q", got)
			}
			if r.Header.Get("ETag") == "" {
				t.Error("no ETag")
			}
			if tc.method == "HEAD" && len(body) != 0 {
				t.Error("HEAD has a body")
			}
			if tc.method == "GET" && len(body) == 0 {
				t.Error("empty body")
			}
		})
	}
}

func TestHandler_Revalidation(t *testing.T) {
	h := testHandler(Options{WebSocketPort: 8083})
	first := do(t, h, "GET", "/app.js", nil, "")
	plain := readBody(t, first)
	etag := first.Header.Get("ETag")
	for _, tc := range []struct {
		name, inm string
		status    int
	}{
		{"same", etag, 304},
		{"weak form", "W/" + etag, 304},
		{"in a list", `"x", ` + etag, 304},
		{"star", "*", 304},
		{"other", `"x"`, 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, h, "GET", "/app.js", map[string]string{"If-None-Match": tc.inm}, "")
			if body := readBody(t, r); r.StatusCode != tc.status || (tc.status == 304 && len(body) != 0) {
				t.Fatalf("status %d with %d bytes, want %d", r.StatusCode, len(body), tc.status)
			}
		})
	}

	// gzip for clients that take it, with its own ETag.
	r := do(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": "br, gzip"}, "")
	if r.Header.Get("Content-Encoding") != "gzip" || r.Header.Get("ETag") == etag || !strings.Contains(r.Header.Get("Vary"), "Accept-Encoding") {
		t.Fatalf("gzip headers: %v", r.Header)
	}
	zr, err := gzip.NewReader(bytes.NewReader(readBody(t, r)))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(unzipped, plain) {
		t.Fatalf("gzip body differs (%v)", err)
	}
	if r := do(t, h, "GET", "/app.js", map[string]string{"Accept-Encoding": "gzip;q=0"}, ""); r.Header.Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 got gzip")
	}
}

func TestHandler_Config(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"ws and no dev login", Options{WebSocketPort: 8083}, `{"websocket":{"scheme":"ws","port":8083,"path":"/mqtt"},"dev_login":false}`},
		{"wss and dev login", Options{WebSocketPort: 443, WebSocketTLS: true, DevToken: func(string) (string, error) { return "", nil }},
			`{"websocket":{"scheme":"wss","port":443,"path":"/mqtt"},"dev_login":true}`},
		{"no websocket listener", Options{}, `{"websocket":null,"dev_login":false}`},
		{"public url behind a proxy", Options{WebSocketPort: 8083, WebSocketURL: "wss://chat.example.com/mqtt"},
			`{"websocket":{"url":"wss://chat.example.com/mqtt"},"dev_login":false}`},
		{"public url, no listener on this node", Options{WebSocketURL: "ws://10.0.0.5:8083/mqtt"},
			`{"websocket":{"url":"ws://10.0.0.5:8083/mqtt"},"dev_login":false}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, testHandler(tc.opts), "GET", "/web-config.json", nil, "")
			if got := strings.TrimSpace(string(readBody(t, r))); r.StatusCode != 200 || got != tc.want {
				t.Fatalf("%d %s, want %s", r.StatusCode, got, tc.want)
			}
			if r.Header.Get("Cache-Control") != "no-store" || r.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("headers %v", r.Header)
			}
		})
	}
}

// With a public WebSocket URL, the CSP lets the page connect to that URL's
// origin, and no longer to the listener's port on the page's host.
func TestHandler_PublicURLInCSP(t *testing.T) {
	h := testHandler(Options{WebSocketPort: 8083, WebSocketURL: "wss://chat.example.com/mqtt"})
	r := do(t, h, "GET", "/", nil, "")
	checkSecurityHeaders(t, r, " wss://chat.example.com")
	if csp := r.Header.Get("Content-Security-Policy"); strings.Contains(csp, ":8083") {
		t.Fatalf("CSP still allows the listener's port: %q", csp)
	}
}

func TestHandler_DevToken(t *testing.T) {
	mint := func(uid string) (string, error) {
		switch uid {
		case "admin":
			return "", ErrBadUID
		case "broken":
			return "", errors.New("store on fire")
		}
		return "token-for-" + uid, nil
	}
	on := testHandler(Options{WebSocketPort: 8083, DevToken: mint})
	off := testHandler(Options{WebSocketPort: 8083})
	jsonCT := map[string]string{"Content-Type": "application/json"}
	for _, tc := range []struct {
		name   string
		h      http.Handler
		method string
		header map[string]string
		body   string
		status int
		want   string // token or error code
	}{
		{"mints", on, "POST", jsonCT, `{"uid":"10001"}`, 200, "token-for-10001"},
		{"content type with charset", on, "POST", map[string]string{"Content-Type": "application/json; charset=utf-8"}, `{"uid":"a.b-c_d"}`, 200, "token-for-a.b-c_d"},
		{"off", off, "POST", jsonCT, `{"uid":"10001"}`, 404, "not_found"},
		{"get is no login", on, "GET", nil, "", 404, ""},
		{"form post refused", on, "POST", map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, `uid=10001`, 415, "bad_json"},
		{"no content type", on, "POST", nil, `{"uid":"10001"}`, 415, "bad_json"},
		{"bad json", on, "POST", jsonCT, `{"uid":`, 400, "bad_json"},
		{"uid not a string", on, "POST", jsonCT, `{"uid":10001}`, 400, "bad_json"},
		{"empty uid", on, "POST", jsonCT, `{"uid":""}`, 400, "bad_uid"},
		{"bad uid", on, "POST", jsonCT, `{"uid":"a/b"}`, 400, "bad_uid"},
		{"long uid", on, "POST", jsonCT, `{"uid":"` + strings.Repeat("1", 65) + `"}`, 400, "bad_uid"},
		{"refused uid", on, "POST", jsonCT, `{"uid":"admin"}`, 400, "bad_uid"},
		{"mint fails", on, "POST", jsonCT, `{"uid":"broken"}`, 500, "internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := do(t, tc.h, tc.method, "/dev/token", tc.header, tc.body)
			body := readBody(t, r)
			if r.StatusCode != tc.status {
				t.Fatalf("status %d (%s), want %d", r.StatusCode, body, tc.status)
			}
			checkSecurityHeaders(t, r, " ws://127.0.0.1:8083")
			if tc.want == "" {
				return
			}
			var out struct {
				Token string `json:"token"`
				Error struct {
					Code string `json:"code"`
				} `json:"error"`
			}
			if err := json.Unmarshal(body, &out); err != nil {
				t.Fatalf("%s: %v", body, err)
			}
			if got := out.Token + out.Error.Code; got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
			if strings.Contains(string(body), "fire") {
				t.Fatal("internal error leaked")
			}
		})
	}
}

func TestWSOrigin(t *testing.T) {
	for _, tc := range []struct {
		name, host string
		opts       Options
		want       string
	}{
		{"ipv4 with port", "127.0.0.1:8080", Options{WebSocketPort: 8083}, "ws://127.0.0.1:8083"},
		{"name without port", "chat.example.com", Options{WebSocketPort: 8083}, "ws://chat.example.com:8083"},
		{"ipv6", "[::1]:8080", Options{WebSocketPort: 8083}, "ws://[::1]:8083"},
		{"tls", "chat.example.com:443", Options{WebSocketPort: 8883, WebSocketTLS: true}, "wss://chat.example.com:8883"},
		{"no listener", "127.0.0.1:8080", Options{}, ""},
		{"header injection", "x; script-src *", Options{WebSocketPort: 8083}, ""},
		{"quote", "x'y", Options{WebSocketPort: 8083}, ""},
		{"empty host", "", Options{WebSocketPort: 8083}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := &handler{opts: tc.opts}
			if got := h.wsOrigin(tc.host); got != tc.want {
				t.Fatalf("wsOrigin(%q) = %q, want %q", tc.host, got, tc.want)
			}
		})
	}
}

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   bool
	}{
		{"", false},
		{"gzip", true},
		{"deflate, gzip;q=0.8", true},
		{"GZIP", true},
		{"gzip;q=0", false},
		{"gzip; q=0.0", false},
		{"br", false},
		{"x-gzip", false},
	} {
		if got := acceptsGzip(tc.header); got != tc.want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", tc.header, got, tc.want)
		}
	}
}

// Every file the page names is embedded, and nothing else from outside.
func TestPageAssetsEmbedded(t *testing.T) {
	files := embedded()
	page := string(files["/index.html"].body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(page, -1)
	if len(refs) < 4 {
		t.Fatalf("only %d references in index.html", len(refs))
	}
	for _, m := range refs {
		if strings.Contains(m[1], "//") || strings.HasPrefix(m[1], "/") {
			t.Errorf("index.html loads %q: not a relative path", m[1])
			continue
		}
		if _, ok := files["/"+m[1]]; !ok {
			t.Errorf("index.html loads %q, which is not embedded", m[1])
		}
	}
	if strings.Contains(page, "<script>") || strings.Contains(page, "style=") || regexp.MustCompile(` on[a-z]+=`).MatchString(page) {
		t.Error("inline script, style or handler in index.html: the CSP blocks them")
	}
}

// Message data is only ever put on the page as text.
func TestAppScriptAvoidsHTMLSinks(t *testing.T) {
	app := string(embedded()["/app.js"].body)
	for _, sink := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function"} {
		if strings.Contains(app, sink) {
			t.Errorf("app.js uses %s", sink)
		}
	}
}

// The vendored MQTT.js keeps its license and says which version it is.
func TestVendoredMQTTJS(t *testing.T) {
	f := embedded()["/vendor/mqtt.min.js"]
	head := string(f.body[:min(len(f.body), 2000)])
	for _, want := range []string{"MQTT.js 5.", "The MIT License", "Permission is hereby granted"} {
		if !strings.Contains(head, want) {
			t.Errorf("vendor/mqtt.min.js header lacks %q", want)
		}
	}
	if f.gz == nil {
		t.Error("the bundle is not served compressed")
	}
}
