package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// freePort closes the port it found before the broker binds it, so on a
// machine where other tests start servers too, another process can take
// it in between; a dial to the port then reaches that process, and the
// scenario fails later with a puzzling EOF. startProcess therefore also
// checks that the socket listening on the port is the broker's.

// ownsListener reports whether process pid holds a socket listening on
// TCP port (IPv4, /proc/net/tcp).
func ownsListener(pid, port int) (bool, error) {
	table, err := os.ReadFile("/proc/net/tcp")
	if err != nil {
		return false, fmt.Errorf("read listening sockets: %w", err)
	}
	inodes := listenInodes(string(table), port)
	if len(inodes) == 0 {
		return false, nil
	}
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	fds, err := os.ReadDir(dir)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", dir, err)
	}
	for _, fd := range fds {
		link, err := os.Readlink(dir + "/" + fd.Name())
		if err != nil {
			continue // closed since the directory was read
		}
		if inode, ok := strings.CutPrefix(link, "socket:["); ok && inodes[strings.TrimSuffix(inode, "]")] {
			return true, nil
		}
	}
	return false, nil
}

// listenInodes returns the inodes of the sockets a /proc/net/tcp table
// lists in state LISTEN (0A) on port, whatever their address.
func listenInodes(table string, port int) map[string]bool {
	out := map[string]bool{}
	for i, line := range strings.Split(table, "\n") {
		f := strings.Fields(line)
		if i == 0 || len(f) < 10 || f[3] != "0A" {
			continue // the header, a short line, or not listening
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		p, err := strconv.ParseUint(hexPort, 16, 16)
		if !ok || err != nil || int(p) != port {
			continue
		}
		out[f[9]] = true
	}
	return out
}
