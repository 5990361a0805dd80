package redisstore

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/inboxmq/inboxmq/inbox"
	"github.com/inboxmq/inboxmq/internal/redistest"
)

// What a direct message's Submit costs Redis itself: the CPU time of the
// redis-server processes (/proc) and the commands they ran (INFO
// commandstats), per message, with 16 callers writing to 1000 users'
// inboxes, on one server and on a 3-master Redis Cluster (the lock
// protocol), each started for the benchmark without persistence.
// docs/performance.md ("Redis cost per message") builds its capacity
// model on them. Run with -bench SubmitDM -benchtime 20000x.

func BenchmarkSubmitDM_1Master(b *testing.B) {
	srv := redistest.Start(b, redistest.Config{})
	benchSubmitCost(b, srv.Client(b), []string{srv.Addr})
}

// BenchmarkSubmitDM_1MasterAOF is _1Master with appendonly yes and
// appendfsync always, as the end-to-end measurements run Redis: the
// difference is what durability costs Redis per message.
func BenchmarkSubmitDM_1MasterAOF(b *testing.B) {
	srv := redistest.Start(b, redistest.Config{AOF: true})
	benchSubmitCost(b, srv.Client(b), []string{srv.Addr})
}

func BenchmarkSubmitDM_3Masters(b *testing.B) {
	cl := redistest.StartCluster(b, 3)
	benchSubmitCost(b, cl.Client(b), cl.Addrs())
}

func benchSubmitCost(b *testing.B, c redis.UniversalClient, addrs []string) {
	s := openStore(b, c, newPrefix(), inbox.Options{MaxPerInbox: 10000, NodeID: 1})
	const users = 1000
	var k atomic.Int64
	submit := func() error {
		n := int(k.Add(1))
		from, to := strconv.Itoa(n%users), strconv.Itoa((n*7+3)%users)
		if from == to {
			to = strconv.Itoa((n*7 + 4) % users)
		}
		text := "message " + strconv.Itoa(n) + strings.Repeat("x", 80)
		_, err := s.Submit(context.Background(), inbox.Request{
			Msgs: []inbox.Message{
				{UID: to, Kind: inbox.KindDirect, Peer: from, Nickname: "n", Avatar: "https://a.example/x.png", Content: text},
				{UID: from, Kind: inbox.KindSent, Peer: to, Content: text, CID: "c" + strconv.Itoa(n)},
			},
			Key: from + " c" + strconv.Itoa(n), Sum: sha256.Sum256([]byte(to + "\x00" + text)), PushAfter: time.Minute,
			RefuseIfBlocked: from, // as the messaging service asks it of every direct message
		})
		return err
	}
	for range 3 * users { // every inbox written once: its first append is not what a message costs
		if err := submit(); err != nil {
			b.Fatal(err)
		}
	}
	pids := make([]int, len(addrs))
	cpu0 := make([]time.Duration, len(addrs))
	cmds0 := 0
	for i, a := range addrs {
		pids[i] = serverPID(b, a)
		cpu0[i] = processCPU(b, pids[i])
		cmds0 += serverCommands(b, a)
	}
	b.SetParallelism(8) // 16 callers on 2 cores: Redis sees concurrent requests, as from a busy node
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := submit(); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.StopTimer()
	var sum, busiest time.Duration
	cmds := -cmds0
	for i, a := range addrs {
		d := processCPU(b, pids[i]) - cpu0[i]
		sum += d
		busiest = max(busiest, d)
		cmds += serverCommands(b, a)
	}
	per := func(d time.Duration) float64 { return float64(d.Microseconds()) / float64(b.N) }
	b.ReportMetric(per(sum), "redis-µs/op")
	b.ReportMetric(per(busiest), "busiest-master-µs/op")
	b.ReportMetric(float64(cmds)/float64(b.N), "redis-cmds/op")
}

// serverPID is a redis-server's process id (INFO server).
func serverPID(tb testing.TB, addr string) int {
	tb.Helper()
	info, err := redistest.Do(addr, 5*time.Second, "INFO", "server")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				tb.Fatal(err)
			}
			return pid
		}
	}
	tb.Fatalf("no process_id in INFO server of %s", addr)
	return 0
}

// processCPU is the user+system CPU time pid has used (/proc/PID/stat).
func processCPU(tb testing.TB, pid int) time.Duration {
	tb.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		tb.Fatal(err)
	}
	s := string(raw)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		tb.Fatalf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond // USER_HZ 100
}

// serverCommands is how many commands a server has run, those scripts ran
// included (INFO stats).
func serverCommands(tb testing.TB, addr string) int {
	tb.Helper()
	info, err := redistest.Do(addr, 5*time.Second, "INFO", "stats")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.Lines(info) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "total_commands_processed:"); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				tb.Fatal(err)
			}
			return n
		}
	}
	tb.Fatalf("no total_commands_processed in INFO stats of %s", addr)
	return 0
}
