package api

import (
	_ "embed" // the OpenAPI document is part of the binary
	"net/http"
	"slices"

	"github.com/inboxmq/inboxmq/messaging"
)

// openAPIDoc is the OpenAPI 3 document of every endpoint (Endpoints), of
// both listeners: each operation is tagged "public" or "admin" by the
// listener that serves it, and its servers entry says the same. A test
// validates real responses of a running broker against it.
//
//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document of the API (JSON).
func OpenAPI() []byte { return slices.Clone(openAPIDoc) }

// openAPI serves the document on the public listener, without
// credentials: it holds nothing that is not in docs/api.md.
func (a *api) openAPI(w http.ResponseWriter, r *http.Request, _ messaging.Actor) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if _, err := w.Write(openAPIDoc); err != nil {
		a.Log.Debug("openapi document not sent", "error", err)
	}
}
