package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
)

// Placements: where the broker and the harness run during a scenario.
// Shared lets the kernel put both on any CPU (the harness's clients then
// compete with the broker for the same cores); pinned puts the broker on
// Options.BrokerCPUs and the harness on Options.HarnessCPUs with taskset
// (util-linux), so that the broker's throughput is not bounded by its own
// clients taking its core.
const (
	Shared = "shared"
	Pinned = "pinned"
)

// placements is what -placement selects.
func placements(p string) []string {
	if p == "both" {
		return []string{Shared, Pinned}
	}
	return []string{p}
}

// parseCPUList reads a taskset CPU list ("0", "1-3", "0,2-3") into CPU
// numbers, refusing anything else: the list goes on a command line.
func parseCPUList(s string) ([]int, error) {
	if s == "" {
		return nil, errors.New("empty CPU list")
	}
	var cpus []int
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil || a < 0 {
			return nil, fmt.Errorf("CPU list %q: %q is not a CPU number", s, lo)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return nil, fmt.Errorf("CPU list %q: bad range %q", s, part)
			}
		}
		for c := a; c <= b; c++ {
			cpus = append(cpus, c)
		}
	}
	return cpus, nil
}

// checkPinning refuses CPU lists that name a CPU the machine does not have
// or that share a CPU: pinned runs are meant to keep the two apart.
func checkPinning(broker, harness string, ncpu int) error {
	b, err := parseCPUList(broker)
	if err != nil {
		return fmt.Errorf("-broker-cpus: %w", err)
	}
	h, err := parseCPUList(harness)
	if err != nil {
		return fmt.Errorf("-harness-cpus: %w", err)
	}
	seen := map[int]bool{}
	for _, c := range b {
		seen[c] = true
	}
	for _, c := range append(b, h...) {
		if c >= ncpu {
			return fmt.Errorf("CPU %d: the machine has %d CPUs (0-%d)", c, ncpu, ncpu-1)
		}
	}
	for _, c := range h {
		if seen[c] {
			return fmt.Errorf("-broker-cpus %s and -harness-cpus %s share CPU %d", broker, harness, c)
		}
	}
	return nil
}

// pinnedArgv runs argv on cpus through taskset, which execs it: the PID
// the harness reads CPU time from stays the broker's.
func pinnedArgv(cpus string, argv []string) []string {
	if cpus == "" {
		return argv
	}
	return append([]string{"taskset", "-c", cpus}, argv...)
}

// affinity is the harness's CPU placement: setAffinity moves every thread
// of this process (taskset -a) to cpus; new threads inherit it from the
// thread that makes them.
type affinity struct {
	initial string // the list the process started with, restored for shared runs
	current string
}

func newAffinity() (*affinity, error) {
	out, err := exec.Command("taskset", "-c", "-p", strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("taskset -c -p (install util-linux): %w: %s", err, out)
	}
	list, err := parseAffinityList(string(out))
	if err != nil {
		return nil, err
	}
	return &affinity{initial: list, current: list}, nil
}

// parseAffinityList reads the list from taskset -c -p's answer, "pid 42's
// current affinity list: 0,1".
func parseAffinityList(out string) (string, error) {
	_, list, ok := strings.Cut(strings.TrimSpace(out), "affinity list:")
	list = strings.TrimSpace(list)
	if !ok || list == "" {
		return "", fmt.Errorf("taskset printed %q, want its affinity list", strings.TrimSpace(out))
	}
	if _, err := parseCPUList(list); err != nil {
		return "", err
	}
	return list, nil
}

// set moves the harness to cpus ("" for where it started).
func (a *affinity) set(cpus string) error {
	if cpus == "" {
		cpus = a.initial
	}
	if cpus == a.current {
		return nil
	}
	// Keep this goroutine's thread from changing under taskset's walk of
	// the threads; the others are all moved by it.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	out, err := exec.Command("taskset", "-a", "-c", "-p", cpus, strconv.Itoa(os.Getpid())).CombinedOutput()
	if err != nil {
		return fmt.Errorf("taskset -a -c -p %s: %w: %s", cpus, err, out)
	}
	a.current = cpus
	return nil
}

// cpusAllowed is the CPU list process pid may run on (Cpus_allowed_list in
// /proc/PID/status), to check that taskset took.
func cpusAllowed(pid int) (string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", fmt.Errorf("read CPU affinity: %w", err)
	}
	return parseCpusAllowed(string(b))
}

func parseCpusAllowed(status string) (string, error) {
	for line := range strings.Lines(status) {
		if rest, ok := strings.CutPrefix(line, "Cpus_allowed_list:"); ok {
			return strings.TrimSpace(rest), nil
		}
	}
	return "", errors.New("no Cpus_allowed_list in /proc/PID/status")
}

// checkPinned fails unless process pid runs on exactly the CPUs of want.
func checkPinned(who string, pid int, want string) error {
	got, err := cpusAllowed(pid)
	if err != nil {
		return err
	}
	a, err1 := parseCPUList(got)
	b, err2 := parseCPUList(want)
	if err := errors.Join(err1, err2); err != nil {
		return fmt.Errorf("%s: %w", who, err)
	}
	if !slices.Equal(a, b) {
		return fmt.Errorf("%s runs on CPUs %s, want %s (taskset did not take)", who, got, want)
	}
	return nil
}
