package main

import (
	"bufio"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/inboxmq/inboxmq/internal/redistest"
)

// monitor attributes what Redis runs to where it comes from, from the
// MONITOR feed: a script call (EVAL, EVALSHA) is named after its source's
// first line ("-- inboxmq submit") and owns the commands its Lua runs,
// which Redis shows right after it as coming from "lua"; any other command
// is named with the shape of its key (the prefix cut, a uid tag shown as
// {uid}, a thread name as *). MONITOR slows Redis down a lot: nothing
// timed may run while one is on.
type monitor struct {
	addr   string
	conn   net.Conn
	prefix string
	done   chan struct{}
	marked chan struct{} // closed when the feed reached the mark

	// Written by read only; read by stop after done is closed.
	bySha   map[string]*origin // script calls, by SHA1 until named
	plain   map[string]*origin
	names   map[string]string // script SHA1 -> name
	current *origin           // the script whose commands follow
	didMark bool
	err     error
}

// startMonitor flushes Redis's script cache, so that each script is sent
// once with its source (EVAL) and can be named, and starts reading the
// MONITOR feed.
func startMonitor(addr, prefix string) (*monitor, error) {
	if _, err := redistest.Do(addr, 5*time.Second, "SCRIPT", "FLUSH"); err != nil {
		return nil, fmt.Errorf("redis SCRIPT FLUSH: %w", err)
	}
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("monitor: %w", err)
	}
	r := bufio.NewReaderSize(conn, 1<<20)
	if _, err := conn.Write([]byte("*1\r\n$7\r\nMONITOR\r\n")); err != nil {
		conn.Close()
		return nil, fmt.Errorf("monitor: %w", err)
	}
	if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
		conn.Close()
		return nil, fmt.Errorf("monitor: reply %q: %v", line, err)
	}
	m := &monitor{addr: addr, conn: conn, prefix: prefix, done: make(chan struct{}), marked: make(chan struct{}),
		bySha: map[string]*origin{}, plain: map[string]*origin{}, names: map[string]string{}}
	go m.read(r)
	return m, nil
}

// monitorMark is the argument of the ECHO that marks where counting starts.
const monitorMark = "inboxbench-monitor-mark"

// mark makes the counts start over from now (the scripts' names learnt so
// far are kept), and waits until the feed got there.
func (m *monitor) mark() error {
	if _, err := redistest.Do(m.addr, 5*time.Second, "ECHO", monitorMark); err != nil {
		return fmt.Errorf("monitor mark: %w", err)
	}
	select {
	case <-m.marked:
		return nil
	case <-m.done:
		return fmt.Errorf("monitor ended before its mark: %v", m.err)
	case <-time.After(30 * time.Second):
		return errors.New("monitor mark not seen within 30 s")
	}
}

// stop ends the feed and returns the origins by name.
func (m *monitor) stop() (map[string]*origin, error) {
	time.Sleep(100 * time.Millisecond) // the feed trails what Redis ran
	m.conn.Close()
	<-m.done
	out := m.plain
	for sha, o := range m.bySha {
		name := m.names[sha]
		if name == "" {
			name = "script " + sha[:min(8, len(sha))]
		}
		if prev := out[name]; prev != nil { // several versions of one script
			prev.calls, prev.commands = prev.calls+o.calls, prev.commands+o.commands
			for k, v := range o.inner {
				prev.inner[k] += v
			}
			continue
		}
		out[name] = o
	}
	if m.err != nil && !errors.Is(m.err, net.ErrClosed) {
		return out, m.err
	}
	return out, nil
}

func (m *monitor) read(r *bufio.Reader) {
	defer close(m.done)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			m.err = err
			return
		}
		if err := m.add(strings.TrimRight(line, "\r\n")); err != nil {
			m.err = err
			return
		}
	}
}

// add counts one feed line: +TIME [DB CLIENT] "ARG" "ARG"...
func (m *monitor) add(line string) error {
	head, rest, ok := strings.Cut(line, "] ")
	if !ok || !strings.HasPrefix(line, "+") {
		return fmt.Errorf("monitor: unexpected line %q", clip(line))
	}
	args, err := monitorArgs(rest)
	if err != nil || len(args) == 0 {
		return fmt.Errorf("monitor: line %q: %v", clip(line), err)
	}
	cmd := strings.ToUpper(args[0])
	if cmd == "ECHO" && len(args) == 2 && args[1] == monitorMark {
		clear(m.bySha)
		clear(m.plain)
		m.current = nil
		if !m.didMark {
			m.didMark = true
			close(m.marked)
		}
		return nil
	}
	if cmd == "ZCARD" && len(args) == 2 && args[1] == m.prefix+pushKey {
		return nil // the harness waiting for the push checks (costWorkload.send)
	}
	if strings.HasSuffix(head, " lua") {
		if m.current != nil {
			m.current.commands++
			m.current.inner[m.shape(cmd, args)]++
		}
		return nil
	}
	switch cmd {
	case "EVAL", "EVALSHA", "EVAL_RO", "EVALSHA_RO":
		if len(args) < 2 {
			return fmt.Errorf("monitor: %s without a script", cmd)
		}
		sha := args[1]
		if !strings.HasPrefix(cmd, "EVALSHA") {
			sum := sha1.Sum([]byte(args[1]))
			sha = hex.EncodeToString(sum[:])
			m.names[sha] = scriptName(args[1])
		}
		o := m.bySha[sha]
		if o == nil {
			o = &origin{inner: map[string]float64{}}
			m.bySha[sha] = o
		}
		o.calls++
		o.commands++
		m.current = o
		return nil
	}
	m.current = nil
	name := m.shape(cmd, args)
	o := m.plain[name]
	if o == nil {
		o = &origin{}
		m.plain[name] = o
	}
	o.calls++
	o.commands++
	return nil
}

// shape names a command by its first key, cut to its shape.
func (m *monitor) shape(cmd string, args []string) string {
	if len(args) < 2 {
		return cmd
	}
	k := strings.TrimPrefix(args[1], m.prefix)
	if open, end := strings.IndexByte(k, '{'), strings.IndexByte(k, '}'); open >= 0 && end > open {
		tag, rest := k[open+1:end], k[end+1:]
		if !strings.HasPrefix(tag, "$") && tag != "signals" {
			tag = "uid"
		}
		for _, p := range []string{":t:", ":u:"} {
			if strings.HasPrefix(rest, p) {
				rest = p + "*"
			}
		}
		k = k[:open] + "{" + tag + "}" + rest
	}
	return cmd + " " + k
}

// scriptName is a script's name from its first line ("-- inboxmq NAME"),
// else the start of its source.
func scriptName(src string) string {
	first, _, _ := strings.Cut(src, "\n")
	if name, ok := strings.CutPrefix(first, "-- inboxmq "); ok {
		return "script " + strings.TrimSpace(name)
	}
	src = strings.Join(strings.Fields(src), " ")
	return "script " + src[:min(40, len(src))]
}

// monitorArgs splits the quoted arguments of a MONITOR line, undoing
// Redis's escapes (sdscatrepr: \\ \" \n \r \t \a \b \xHH).
func monitorArgs(s string) ([]string, error) {
	var args []string
	for i := 0; i < len(s); {
		if s[i] == ' ' {
			i++
			continue
		}
		if s[i] != '"' {
			return nil, fmt.Errorf("argument at %d not quoted", i)
		}
		var b strings.Builder
		i++
		for {
			if i >= len(s) {
				return nil, errors.New("unterminated argument")
			}
			c := s[i]
			if c == '"' {
				i++
				break
			}
			if c != '\\' || i+1 >= len(s) {
				b.WriteByte(c)
				i++
				continue
			}
			switch e := s[i+1]; e {
			case 'n':
				b.WriteByte('\n')
			case 'r':
				b.WriteByte('\r')
			case 't':
				b.WriteByte('\t')
			case 'a':
				b.WriteByte('\a')
			case 'b':
				b.WriteByte('\b')
			case 'x':
				if i+3 >= len(s) {
					return nil, errors.New("short \\x escape")
				}
				v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
				if err != nil {
					return nil, fmt.Errorf("\\x escape: %w", err)
				}
				b.WriteByte(byte(v))
				i += 2
			default:
				b.WriteByte(e)
			}
			i += 2
		}
		args = append(args, b.String())
	}
	return args, nil
}
