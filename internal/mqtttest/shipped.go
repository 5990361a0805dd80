package mqtttest

import (
	"bytes"
	"debug/elf"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var shippedBuild build

// ShippedBinary builds cmd/inboxmq with `make build`, exactly as it is
// shipped (static, -trimpath, the version stamped by the Makefile), once
// per test process, and returns its path. Tests of what ships (the ELF,
// the version, the image) use it so the Makefile's flags are what they
// check.
func ShippedBinary(tb testing.TB) string {
	tb.Helper()
	shippedBuild.once.Do(func() {
		dir, err := os.MkdirTemp("", "inboxmq-shipped-")
		if err != nil {
			shippedBuild.err = err
			return
		}
		shippedBuild.path = filepath.Join(dir, "inboxmq")
		root, err := moduleRoot()
		if err != nil {
			shippedBuild.err = err
			return
		}
		cmd := exec.Command("make", "--no-print-directory", "build", "BIN="+shippedBuild.path)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			shippedBuild.err = fmt.Errorf("make build: %w\n%s", err, out)
		}
	})
	if shippedBuild.err != nil {
		tb.Fatal(shippedBuild.err)
	}
	return shippedBuild.path
}

// ModuleRoot is the directory holding go.mod, for tests that read the
// repository's own files (the Makefile, deploy/, the Dockerfile).
func ModuleRoot(tb testing.TB) string {
	tb.Helper()
	root, err := moduleRoot()
	if err != nil {
		tb.Fatal(err)
	}
	return root
}

// DynamicLinking says why the ELF file at path needs the dynamic loader,
// "" when it is static: a PT_INTERP program header names the loader,
// DT_NEEDED entries name shared libraries.
func DynamicLinking(path string) (string, error) {
	f, err := elf.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	var why []string
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, err := io.ReadAll(p.Open())
			if err != nil {
				return "", fmt.Errorf("%s: PT_INTERP: %w", path, err)
			}
			why = append(why, "interpreter "+string(bytes.TrimRight(interp, "\x00")))
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", fmt.Errorf("%s: DT_NEEDED: %w", path, err)
	}
	if len(libs) > 0 {
		why = append(why, "libraries "+strings.Join(libs, ", "))
	}
	return strings.Join(why, "; "), nil
}
