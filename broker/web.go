package broker

import (
	"net/http"
)

// webHandler serves the reference web client at / on the HTTP listener.
// The client itself lands with package web.
func (b *Broker) webHandler() http.Handler {
	return http.NotFoundHandler()
}
