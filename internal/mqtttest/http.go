package mqtttest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"testing"
)

// HTTP is a client of the broker's HTTP API.
type HTTP struct {
	Base string // http://host:port
}

// Response is a decoded API answer.
type Response struct {
	Status int
	Body   map[string]any
	Raw    []byte
}

// Do sends a request with a bearer token (or basic auth when user is set)
// and decodes the JSON answer.
func (h HTTP) Do(tb testing.TB, method, path string, auth Auth, body any) Response {
	tb.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(Payload(body))
	}
	req, err := http.NewRequest(method, h.Base+path, rd)
	if err != nil {
		tb.Fatal(err)
	}
	switch {
	case auth.User != "":
		req.SetBasicAuth(auth.User, auth.Password)
	case auth.Token != "":
		req.Header.Set("Authorization", "Bearer "+auth.Token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	out := Response{Status: resp.StatusCode, Raw: raw}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	_ = dec.Decode(&out.Body)
	return out
}

// Auth is how a request authenticates: a bearer token or basic auth.
type Auth struct {
	Token          string
	User, Password string
}

// ErrorCode returns error.code of an error answer.
func (r Response) ErrorCode() string {
	e, _ := r.Body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// List returns a top-level array field as objects.
func (r Response) List(key string) []map[string]any {
	raw, _ := r.Body[key].([]any)
	out := make([]map[string]any, 0, len(raw))
	for _, v := range raw {
		m, _ := v.(map[string]any)
		out = append(out, m)
	}
	return out
}
