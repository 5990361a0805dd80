// Command inboxbench measures inboxmq against Mosquitto with real MQTT
// clients on loopback. Run "inboxbench --help" for the flags.
//
// Each scenario starts a fresh broker process, connects paho clients
// (MQTT 3.1.1 and MQTT 5), prints a human table and one JSON line per
// broker, and with -broker both ends with the ratio inboxmq/Mosquitto of
// every figure and the targets. Linux only: it reads /proc and
// raises RLIMIT_NOFILE.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

const usage = `inboxbench: inboxmq versus Mosquitto, real MQTT clients on loopback.

Usage:
  go run ./cmd/inboxbench [flags]

Against inboxmq the clients speak its contract: username = uid, password =
an HS256 token, requests on im/sendmsg and im/systemadmin, envelopes on
inbox/{uid} and broadcast. Against Mosquitto they publish the same bytes
straight to inbox/{recipient} and broadcast. Every scenario uses QoS 1 and
persistent sessions, and starts its own broker process in a temporary dir.

Scenarios:
  dm       -users users, -senders of them send to random users in closed
           loop for -duration, then again paced at -rate msg/s
  offline  -users x -offline-msgs messages queued while the users are
           offline, then all reconnect: time to drain; then the same with a
           SIGKILL and restart of the broker before the reconnect
  fanout   -users subscribers of "broadcast", -notices admin notices
  conns    -conns idle connections held for -hold: connect rate and broker
           RSS per connection
  scale    inboxmq only: the dm closed-loop run (-users, -senders,
           -duration) on 1 node with the embedded store, 1 node on Redis
           and 2 nodes on Redis (every message to a user on the other
           node), side by side, with Redis commands and Redis CPU per
           message. The harness starts its own redis-server (appendonly
           yes, appendfsync always; needs redis-server on PATH). Part of
           "all" when -broker includes inboxmq
  rediscost  inboxmq only, not part of "all": what one direct message
           costs Redis, counted: -messages messages (closed loop, -users,
           -senders) on 1 node and on 2 nodes, each on its own
           redis-server; per message the Redis commands (those scripts
           run included), the requests from the nodes, Redis CPU, and
           where each command comes from (a MONITOR pass)

The headline figure of each messaging scenario is the broker's CPU per
delivered message (/proc/PID/stat, same run, same workload). With -rounds N
each messaging scenario runs N times per broker, the brokers alternating
(A B A B ...), and the run ends with the median and range of each broker
and the ratio of the medians. -placement pinned (or both) also runs each
one with the broker on -broker-cpus and the harness on -harness-cpus
(taskset, from util-linux), reported beside the co-located runs.

Flags:
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run is main without the process: it returns the exit code.
func run(args []string, stdout, stderr io.Writer) int {
	opts, err := parseFlags(args, stderr)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return 0
	case err != nil:
		fmt.Fprintf(stderr, "inboxbench: %v\n", err)
		return 2
	}
	if _, err := Run(opts, stdout, stderr); err != nil {
		fmt.Fprintf(stderr, "inboxbench: %v\n", err)
		return 1
	}
	return 0
}

// Options are the harness settings; the zero value is not useful, start
// from DefaultOptions or QuickOptions.
type Options struct {
	Brokers      []string      // "inboxmq", "mosquitto"
	Scenarios    []string      // "dm", "offline", "fanout", "conns", "scale"
	Duration     time.Duration // dm run length, per mode
	Users        int           // users in dm, offline and fanout
	Senders      int           // dm senders (and offline senders)
	Rate         int           // paced dm rate in msg/s; 0 skips the paced run
	MsgSize      int           // bytes of message text
	Offline      int           // messages queued per offline user
	Notices      int           // admin notices in fanout
	Conns        int           // idle connections
	Hold         time.Duration // how long idle connections are held
	V5           float64       // fraction of clients on MQTT 5 (the rest on 3.1.1)
	Parallel     int           // concurrent connection attempts
	Quiet        time.Duration // stop waiting for deliveries after this long without one
	InboxmqBin   string        // inboxmq binary; "" builds ./cmd/inboxmq
	MosquittoBin string        // mosquitto binary, looked up on PATH and in /usr/sbin
	Seed         int64         // seed of the random recipient choice
	Pprof        string        // inboxmq's admin listener address (metrics, profiles); "" picks a free port
	SlowLog      string        // file that paced runs append their slow messages and machine stalls to; "" for none
	// Messages, when positive, ends dm-max after that many publishes
	// instead of after Duration (Go benchmarks set it to b.N); rediscost
	// measures that many (2,000 when 0).
	Messages int
	// Rounds is how many times each messaging scenario runs on each
	// broker, alternating the brokers (A B A B ...); the summary gives
	// medians and ranges. conns, scale and rediscost run once.
	Rounds int
	// Placement is "shared" (broker and harness on any CPU), "pinned"
	// (taskset: broker on BrokerCPUs, harness on HarnessCPUs) or "both".
	Placement   string
	BrokerCPUs  string // taskset CPU list of the broker in pinned runs
	HarnessCPUs string // taskset CPU list of the harness in pinned runs

	pinBroker string // set for one pinned run: startTarget runs the broker under taskset on it
}

// DefaultOptions are the full workloads.
func DefaultOptions() Options {
	return Options{
		Brokers:      []string{"inboxmq", "mosquitto"},
		Scenarios:    []string{"dm", "offline", "fanout", "conns", "scale"},
		Duration:     20 * time.Second,
		Users:        1000,
		Senders:      100,
		Rate:         2000,
		MsgSize:      100,
		Offline:      100,
		Notices:      1000,
		Conns:        19900,
		Hold:         60 * time.Second,
		V5:           0.5,
		Parallel:     64,
		Quiet:        10 * time.Second,
		MosquittoBin: "mosquitto",
		Seed:         1,
		Rounds:       1,
		Placement:    Shared,
		BrokerCPUs:   "1",
		HarnessCPUs:  "0",
	}
}

// QuickOptions shrink every workload so that all scenarios run in well
// under a minute: 100 users, 3 s, 2,000 connections.
func QuickOptions() Options {
	o := DefaultOptions()
	o.Duration = 3 * time.Second
	o.Users = 100
	o.Senders = 10
	o.Rate = 500
	o.Offline = 20
	o.Notices = 100
	o.Conns = 2000
	o.Hold = 3 * time.Second
	o.Quiet = 5 * time.Second
	return o
}

func parseFlags(args []string, stderr io.Writer) (Options, error) {
	fs := flag.NewFlagSet("inboxbench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	d := DefaultOptions()
	brokerFlag := fs.String("broker", "both", "brokers to measure: inboxmq, mosquitto or both")
	scenarioFlag := fs.String("scenario", "all", "scenarios, comma-separated: dm, offline, fanout, conns, scale, rediscost or all\n(all includes scale when -broker includes inboxmq)")
	quick := fs.Bool("quick", false, "small workloads (100 users, 10 senders, 3 s, 2,000 conns, 3 s hold);\nflags given explicitly still win")
	duration := fs.Duration("duration", d.Duration, "dm: length of each run (max rate, then paced)")
	users := fs.Int("users", d.Users, "dm, offline, fanout: number of users (each one connection)")
	senders := fs.Int("senders", d.Senders, "dm: users that send; offline: sender connections")
	rate := fs.Int("rate", d.Rate, "dm: total msg/s of the paced run; 0 skips it")
	msgSize := fs.Int("msg-size", d.MsgSize, "bytes of message text (sequence, timestamp, padding)")
	offline := fs.Int("offline-msgs", d.Offline, "offline: messages queued per user")
	notices := fs.Int("notices", d.Notices, "fanout: admin notices sent to every subscriber of broadcast")
	conns := fs.Int("conns", d.Conns, "conns: idle connections to open and hold")
	hold := fs.Duration("hold", d.Hold, "conns: how long the idle connections are held")
	v5 := fs.Float64("v5", d.V5, "fraction of user connections on MQTT 5 (paho.golang); the rest use MQTT 3.1.1 (paho)")
	parallel := fs.Int("parallel", d.Parallel, "concurrent connection attempts")
	quiet := fs.Duration("quiet", d.Quiet, "stop waiting for outstanding deliveries after this long without one")
	inboxmqBin := fs.String("inboxmq-bin", "", "inboxmq binary; empty builds ./cmd/inboxmq of this module")
	mosquittoBin := fs.String("mosquitto-bin", d.MosquittoBin, "mosquitto binary (2.0.11 from Debian: apt-get install mosquitto)")
	seed := fs.Int64("seed", d.Seed, "seed of the random recipient choice")
	messages := fs.Int("messages", 0, "dm-max and rediscost: direct messages to send (0: dm-max runs for -duration, rediscost sends 2,000)")
	rounds := fs.Int("rounds", d.Rounds, "runs of each messaging scenario per broker, the brokers alternating (A B A B ...);\nthe summary gives the median and range of each figure")
	placement := fs.String("placement", d.Placement, "shared (broker and harness on any CPU), pinned (taskset: the broker on -broker-cpus,\nthe harness on -harness-cpus) or both (each run shared, then pinned)")
	brokerCPUs := fs.String("broker-cpus", d.BrokerCPUs, "pinned runs: the broker's CPUs (a taskset list)")
	harnessCPUs := fs.String("harness-cpus", d.HarnessCPUs, "pinned runs: the harness's CPUs (a taskset list)")
	slowLog := fs.String("slow-log", "", "dm-paced: append every message slower than 5 ms and every machine stall\n(a 2 ms sleep of the harness waking 3 ms late or more) to this file, in time order")
	pprofAddr := fs.String("pprof", "", "inboxmq: the admin listener's address (/metrics and Go's profiles), e.g. 127.0.0.1:6060,\nto profile the broker during a run with go tool pprof; empty picks a free port")
	if err := fs.Parse(args); err != nil {
		return Options{}, err
	}
	if fs.NArg() > 0 {
		return Options{}, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o := d
	if *quick {
		o = QuickOptions()
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	pick := func(name string, dst *int, v int) {
		if set[name] {
			*dst = v
		}
	}
	pick("users", &o.Users, *users)
	pick("senders", &o.Senders, *senders)
	pick("rate", &o.Rate, *rate)
	pick("msg-size", &o.MsgSize, *msgSize)
	pick("offline-msgs", &o.Offline, *offline)
	pick("notices", &o.Notices, *notices)
	pick("conns", &o.Conns, *conns)
	pick("parallel", &o.Parallel, *parallel)
	pick("messages", &o.Messages, *messages)
	pick("rounds", &o.Rounds, *rounds)
	o.Placement, o.BrokerCPUs, o.HarnessCPUs = *placement, *brokerCPUs, *harnessCPUs
	if set["duration"] {
		o.Duration = *duration
	}
	if set["hold"] {
		o.Hold = *hold
	}
	if set["v5"] {
		o.V5 = *v5
	}
	if set["quiet"] {
		o.Quiet = *quiet
	}
	o.InboxmqBin, o.MosquittoBin, o.Seed, o.Pprof, o.SlowLog = *inboxmqBin, *mosquittoBin, *seed, *pprofAddr, *slowLog

	switch *brokerFlag {
	case "both":
		o.Brokers = []string{"inboxmq", "mosquitto"}
	case "inboxmq", "mosquitto":
		o.Brokers = []string{*brokerFlag}
	default:
		return Options{}, fmt.Errorf("-broker %q: want inboxmq, mosquitto or both", *brokerFlag)
	}
	o.Scenarios = nil
	for _, s := range strings.Split(*scenarioFlag, ",") {
		switch s = strings.TrimSpace(s); s {
		case "all":
			o.Scenarios = append(o.Scenarios, "dm", "offline", "fanout", "conns")
			if slices.Contains(o.Brokers, Inboxmq) {
				o.Scenarios = append(o.Scenarios, "scale")
			}
		case "scale":
			if !slices.Contains(o.Brokers, Inboxmq) {
				return Options{}, errors.New("-scenario scale measures inboxmq only: use -broker inboxmq or both")
			}
			o.Scenarios = append(o.Scenarios, s)
		case "rediscost":
			if !slices.Contains(o.Brokers, Inboxmq) {
				return Options{}, errors.New("-scenario rediscost measures inboxmq only: use -broker inboxmq or both")
			}
			o.Scenarios = append(o.Scenarios, s)
		case "dm", "offline", "fanout", "conns":
			o.Scenarios = append(o.Scenarios, s)
		default:
			return Options{}, fmt.Errorf("-scenario %q: want dm, offline, fanout, conns, scale, rediscost or all", s)
		}
	}
	return o, o.validate()
}

func (o Options) validate() error {
	switch {
	case o.Users < 2:
		return errors.New("-users must be at least 2")
	case o.Senders < 1 || o.Senders > o.Users:
		return errors.New("-senders must be between 1 and -users")
	case o.Duration <= 0 || o.Hold < 0 || o.Quiet <= 0:
		return errors.New("-duration and -quiet must be positive, -hold not negative")
	case o.V5 < 0 || o.V5 > 1:
		return errors.New("-v5 must be between 0 and 1")
	case o.Parallel < 1:
		return errors.New("-parallel must be at least 1")
	case o.MsgSize < 48:
		return errors.New("-msg-size must be at least 48 (room for sequence and timestamp)")
	case o.Offline < 1 || o.Notices < 1 || o.Conns < 1:
		return errors.New("-offline-msgs, -notices and -conns must be positive")
	case o.Rounds < 1:
		return errors.New("-rounds must be at least 1")
	}
	switch o.Placement {
	case Shared:
	case Pinned, "both":
		if err := checkPinning(o.BrokerCPUs, o.HarnessCPUs, runtime.NumCPU()); err != nil {
			return fmt.Errorf("-placement %s: %w", o.Placement, err)
		}
	default:
		return fmt.Errorf("-placement %q: want shared, pinned or both", o.Placement)
	}
	return nil
}
