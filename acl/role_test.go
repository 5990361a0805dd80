package acl

import (
	"errors"
	"strings"
	"testing"
)

func TestValidUID(t *testing.T) {
	tests := []struct {
		name string
		uid  string
		want bool
	}{
		{"digits", "10001", true},
		{"letters", "Alice", true},
		{"all classes", "a-b_c.D9", true},
		{"one char", "a", true},
		{"dots", "..", true},
		{"max length", strings.Repeat("a", 64), true},
		{"no rule -> deny (empty)", "", false},
		{"too long", strings.Repeat("a", 65), false},
		{"slash", "a/b", false},
		{"plus", "+", false},
		{"hash", "#", false},
		{"dollar", "$SYS", false},
		{"space", "a b", false},
		{"percent", "%u", false},
		{"at", "a@b", false},
		{"nul", "a\x00", false},
		{"unicode letter", "ålice", false},
		{"fullwidth digit", "１", false},
		{"bad utf8", "\xff", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ValidUID(tt.uid); got != tt.want {
				t.Errorf("ValidUID(%q) = %v, want %v", tt.uid, got, tt.want)
			}
		})
	}
}

func TestParseRole(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    Role
		wantErr bool
	}{
		{"empty is user", "", RoleUser, false},
		{"user", "user", RoleUser, false},
		{"admin", "admin", RoleAdmin, false},
		{"service", "service", RoleService, false},
		{"anonymous not configurable", "anonymous", "", true},
		{"case sensitive", "Admin", "", true},
		{"spaces", " admin", "", true},
		{"unknown", "root", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRole(tt.in)
			if (err != nil) != tt.wantErr {
				t.Fatalf("ParseRole(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, ErrInvalidRole) {
				t.Errorf("ParseRole(%q) error %v does not wrap ErrInvalidRole", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("ParseRole(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestRoleValid(t *testing.T) {
	tests := []struct {
		name string
		role Role
		want bool
	}{
		{"user", RoleUser, true},
		{"admin", RoleAdmin, true},
		{"service", RoleService, true},
		{"anonymous", RoleAnonymous, true},
		{"no role -> deny", "", false},
		{"unknown", "root", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.role.Valid(); got != tt.want {
				t.Errorf("Role(%q).Valid() = %v, want %v", tt.role, got, tt.want)
			}
		})
	}
}
