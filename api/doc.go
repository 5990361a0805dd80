// Package api is inboxmq's HTTP API: conversations, history pages, unread
// counts and read marks for users, and notices, presence and kicks for
// admin and back-end accounts. It reads the same inbox log that drives
// MQTT delivery and performs writes through the same operations as MQTT
// requests (package messaging), so both paths follow one set of rules.
//
// Users authenticate with "Authorization: Bearer <token>" (the MQTT access
// tokens); static accounts with HTTP basic auth. Errors are JSON
// {"error":{"code":...,"message":...}} and never carry internal details;
// a wrong method on a path that is served answers 405 with Allow. Every
// endpoint is in routes.go (Endpoints) and in the OpenAPI document
// openapi.json, built in and served at /api/v1/openapi.json.
// The handler is safe for concurrent use.
package api
