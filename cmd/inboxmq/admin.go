package main

import (
	"fmt"
	"os"
	"time"

	"github.com/inboxmq/inboxmq/acl"
	"github.com/inboxmq/inboxmq/auth"
	"github.com/inboxmq/inboxmq/broker"
)

// adminToken is the admin token a command that calls the admin API sends:
// given, else $INBOXMQ_ADMIN_TOKEN, else a short-lived one it signs for
// uid with the config's auth.jwt_secret ("" when it can do none of these).
func adminToken(cfg broker.Config, given, uid string) (string, error) {
	if given != "" {
		return given, nil
	}
	if t := os.Getenv(AdminTokenEnv); t != "" {
		return t, nil
	}
	if cfg.Auth.JWTSecret == "" {
		return "", nil
	}
	tokens, err := auth.NewTokens([]byte(cfg.Auth.JWTSecret))
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	t, err := tokens.Mint(auth.Claims{UID: uid, Role: acl.RoleAdmin, TTL: 5 * time.Minute})
	if err != nil {
		return "", fmt.Errorf("admin token: %w", err)
	}
	return t, nil
}
