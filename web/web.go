package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"mime"
	"net"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync"

	"github.com/inboxmq/inboxmq/acl"
)

//go:embed static
var static embed.FS

// ErrBadUID is what Options.DevToken returns (wrapped or not) for a uid
// that may not log in; the page is told 400 bad_uid instead of 500.
var ErrBadUID = errors.New("web: uid may not log in")

// Options configure Handler.
type Options struct {
	// WebSocketPath is the path of the MQTT-over-WebSocket listener, e.g. "/mqtt".
	WebSocketPath string
	// WebSocketPort is the WebSocket listener's port. The page connects to
	// the host it was loaded from, on this port. 0 means there is no
	// WebSocket listener: the page says so instead of connecting.
	WebSocketPort int
	// WebSocketTLS makes the page connect with wss:// instead of ws://.
	WebSocketTLS bool
	// WebSocketURL, when set, is the URL the page connects to, as given
	// (ws:// or wss://, checked by the caller): the public address behind
	// a reverse proxy. Path, port and TLS above are then not used.
	WebSocketURL string
	// DevToken mints an access token for a bare uid, for the page's dev
	// login. nil disables dev login: POST /dev/token answers 404.
	DevToken func(uid string) (string, error)
	// Log receives dev-login events and failures; nil means slog.Default().
	Log *slog.Logger
}

// file is one embedded file, ready to serve.
type file struct {
	body, gz []byte // gz is nil when compression does not pay
	ctype    string
	etag     string // strong; the gzip variant appends "-gz"
}

type handler struct {
	opts  Options
	files map[string]*file // by URL path, "/app.js"
}

// Handler serves the web client: the page and its assets at /, the page's
// settings at GET /web-config.json and, when opts.DevToken is set,
// POST /dev/token. Every answer carries the security headers (a CSP that
// allows scripts and styles from the page's origin only, and connections
// to it and to the WebSocket listener).
func Handler(opts Options) http.Handler {
	if opts.Log == nil {
		opts.Log = slog.Default()
	}
	h := &handler{opts: opts, files: embedded()}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /web-config.json", h.config)
	mux.HandleFunc("POST /dev/token", h.devToken)
	mux.HandleFunc("GET /{path...}", h.static)
	return h.secure(mux)
}

// embedded is every file ready to serve, computed on first use. The map is
// never written after that, so handlers share it.
var embedded = sync.OnceValue(loadFiles)

// loadFiles reads the embedded files: their hashes and compressed forms are
// computed here, not per request.
func loadFiles() map[string]*file {
	files := map[string]*file{}
	root, err := fs.Sub(static, "static")
	if err != nil {
		panic(err) // the embed pattern guarantees the directory
	}
	err = fs.WalkDir(root, ".", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(root, name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &file{body: body, ctype: contentType(name), etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
		if compressible(f.ctype) && len(body) > 1024 {
			var buf bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression) // the level is valid
			if _, err := zw.Write(body); err != nil {
				return err
			}
			if err := zw.Close(); err != nil {
				return err
			}
			if buf.Len() < len(body)*9/10 {
				f.gz = buf.Bytes()
			}
		}
		files["/"+name] = f
		return nil
	})
	if err != nil {
		panic(err) // embedded files cannot fail to read
	}
	return files
}

func contentType(name string) string {
	switch path.Ext(name) {
	case ".html":
		return "text/html; charset=utf-8"
	case ".js":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.HasPrefix(ctype, "image/svg")
}

// secure adds the security headers to every answer, errors included.
func (h *handler) secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", h.csp(r))
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
		next.ServeHTTP(w, r)
	})
}

// csp allows the page's own origin and the WebSocket listener on the host
// the page was loaded from, nothing else: no inline script or style, no
// third-party anything, no framing.
func (h *handler) csp(r *http.Request) string {
	connect := "'self'"
	if u, err := url.Parse(h.opts.WebSocketURL); h.opts.WebSocketURL != "" && err == nil {
		connect += " " + u.Scheme + "://" + u.Host
	} else if ws := h.wsOrigin(r.Host); ws != "" {
		connect += " " + ws
	}
	// worker-src blob: is for MQTT.js, which runs its keepalive timer in a
	// Worker made from a blob: URL so that a background tab, whose timers
	// the browser slows down, still pings in time.
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; worker-src blob:; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// wsOrigin is the WebSocket listener's origin as the page reaches it
// ("ws://127.0.0.1:8083"), or "" when there is none or the Host header is
// not a plain host name or address (it is echoed into a header).
func (h *handler) wsOrigin(hostport string) string {
	if h.opts.WebSocketPort <= 0 {
		return ""
	}
	host := hostport
	if hh, _, err := net.SplitHostPort(hostport); err == nil {
		host = hh
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || len(host) > 253 || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:") != "" {
		return ""
	}
	scheme := "ws"
	if h.opts.WebSocketTLS {
		scheme = "wss"
	}
	return (&url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(h.opts.WebSocketPort))}).String()
}

// webConfig is GET /web-config.json: how the page reaches the broker.
type webConfig struct {
	WebSocket *wsConfig `json:"websocket"` // null: no WebSocket listener
	DevLogin  bool      `json:"dev_login"`
}

type wsConfig struct {
	URL    string `json:"url,omitempty"`    // used as given when set
	Scheme string `json:"scheme,omitempty"` // ws or wss
	Port   int    `json:"port,omitempty"`
	Path   string `json:"path,omitempty"`
}

func (h *handler) config(w http.ResponseWriter, r *http.Request) {
	out := webConfig{DevLogin: h.opts.DevToken != nil}
	if h.opts.WebSocketURL != "" {
		out.WebSocket = &wsConfig{URL: h.opts.WebSocketURL}
	} else if h.opts.WebSocketPort > 0 {
		out.WebSocket = &wsConfig{Scheme: "ws", Port: h.opts.WebSocketPort, Path: h.opts.WebSocketPath}
		if h.opts.WebSocketTLS {
			out.WebSocket.Scheme = "wss"
		}
	}
	writeJSON(w, http.StatusOK, out)
}

// devToken is POST /dev/token {"uid":"..."} -> {"uid":"...","token":"..."}.
// It asks for a JSON content type, which a cross-site form cannot send
// without a CORS preflight that is never granted.
func (h *handler) devToken(w http.ResponseWriter, r *http.Request) {
	if h.opts.DevToken == nil {
		writeError(w, http.StatusNotFound, "not_found", "dev login is off (web.dev_login)")
		return
	}
	if mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type")); err != nil || mt != "application/json" {
		writeError(w, http.StatusUnsupportedMediaType, "bad_json", "send application/json")
		return
	}
	var body struct {
		UID string `json:"uid"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 4<<10)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "bad_json", "the body must be {\"uid\":\"...\"}")
		return
	}
	if !acl.ValidUID(body.UID) {
		writeError(w, http.StatusBadRequest, "bad_uid", "a uid is 1 to 64 characters of A-Z a-z 0-9 _ . -")
		return
	}
	token, err := h.opts.DevToken(body.UID)
	if errors.Is(err, ErrBadUID) {
		writeError(w, http.StatusBadRequest, "bad_uid", "this uid may not log in")
		return
	}
	if err != nil {
		h.opts.Log.Error("web dev login failed", "uid", body.UID, "error", err)
		writeError(w, http.StatusInternalServerError, "internal", "could not mint a token")
		return
	}
	h.opts.Log.Info("web dev login", "uid", body.UID, "remote", r.RemoteAddr)
	writeJSON(w, http.StatusOK, map[string]string{"uid": body.UID, "token": token})
}

// static serves the embedded files. They are revalidated on every use
// (no-cache plus a content ETag): a 304 costs one round trip, and an
// upgraded broker never runs a new page with an old script.
func (h *handler) static(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Path
	if name == "/" {
		name = "/index.html"
	}
	f, ok := h.files[name]
	if !ok {
		http.NotFound(w, r)
		return
	}
	hd := w.Header()
	body, etag := f.body, f.etag
	if f.gz != nil {
		hd.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			body, etag = f.gz, strings.TrimSuffix(etag, `"`)+`-gz"`
			hd.Set("Content-Encoding", "gzip")
		}
	}
	hd.Set("Content-Type", f.ctype)
	hd.Set("Cache-Control", "no-cache")
	hd.Set("ETag", etag)
	if etagMatches(r.Header.Get("If-None-Match"), etag) {
		hd.Del("Content-Encoding")
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body) // the client went away: nothing to do
	}
}

// acceptsGzip reads an Accept-Encoding header; "gzip;q=0" refuses it.
func acceptsGzip(header string) bool {
	for part := range strings.SplitSeq(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(strings.TrimSpace(params), " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}

// etagMatches is If-None-Match's weak comparison.
func etagMatches(header, etag string) bool {
	for part := range strings.SplitSeq(header, ",") {
		part = strings.TrimPrefix(strings.TrimSpace(part), "W/")
		if part == "*" || part == etag {
			return true
		}
	}
	return false
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v) // the client went away: nothing to do
}

// writeError answers like the HTTP API: {"error":{"code","message"}}.
func writeError(w http.ResponseWriter, status int, code, message string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": message}})
}
