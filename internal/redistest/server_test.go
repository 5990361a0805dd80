package redistest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

func TestServerKillRestartAOF(t *testing.T) {
	ctx := context.Background()
	s := Start(t, Config{AOF: true})
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if _, err := Do(s.Addr, time.Second, "PING"); err == nil {
		t.Fatal("PING of a killed server succeeded")
	}
	if err := s.Kill(); err != nil {
		t.Fatalf("second Kill: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	got, err := c.Get(ctx, "k").Result()
	if err != nil || got != "v" {
		t.Fatalf("GET after restart = %q, %v, want v (AOF with appendfsync always)", got, err)
	}
}

func TestServerWithoutAOFForgets(t *testing.T) {
	s := Start(t, Config{})
	if _, err := Do(s.Addr, time.Second, "SET", "k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	if err := s.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	if got, err := Do(s.Addr, time.Second, "GET", "k"); err != nil || got != "" {
		t.Fatalf("GET after restart = %q, %v, want nothing", got, err)
	}
}

func TestDo(t *testing.T) {
	s := Start(t, Config{})
	tests := []struct {
		name    string
		args    []string
		want    string
		wantErr bool
	}{
		{"simple string", []string{"SET", "a", "1"}, "OK", false},
		{"bulk string", []string{"GET", "a"}, "1", false},
		{"integer", []string{"INCR", "a"}, "2", false},
		{"nil bulk", []string{"GET", "missing"}, "", false},
		{"error", []string{"NOSUCHCOMMAND"}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Do(s.Addr, time.Second, tt.args...)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Errorf("Do(%q) = %q, %v, want %q, error %v", tt.args, got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestCluster(t *testing.T) {
	ctx := context.Background()
	c := StartCluster(t, 3)
	cc := c.Client(t)
	for i := range 100 {
		k := "key" + strconv.Itoa(i)
		if err := cc.Set(ctx, k, i, 0).Err(); err != nil {
			t.Fatalf("SET %s: %v", k, err)
		}
	}
	var masters, keys atomic.Int64
	err := cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		masters.Add(1)
		n, err := m.DBSize(ctx).Result()
		keys.Add(n)
		return err
	})
	if err != nil {
		t.Fatalf("ForEachMaster: %v", err)
	}
	if masters.Load() != 3 || keys.Load() != 100 {
		t.Errorf("%d masters hold %d keys, want 3 and 100", masters.Load(), keys.Load())
	}
}
