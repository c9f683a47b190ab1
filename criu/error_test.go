package criu

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirstErrors(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, DumpLog)
	log := "(00.046969) Error (criu/util.c:1533): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n" +
		"(00.054236) Error (criu/namespaces.c:460): Can't dump nested uts namespace for 8323\n" +
		"(00.054240) Error (criu/namespaces.c:721): Can't make utsns id\n" +
		strings.Repeat("(00.06) Unseizing 8281 into 1\n", 20) +
		"(00.063584) Error (criu/cr-dump.c:2111): Dumping FAILED.\n"
	if err := os.WriteFile(p, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	got := firstErrors(p, 2)
	want := []string{"Error (criu/namespaces.c:460): Can't dump nested uts namespace for 8323", "Error (criu/namespaces.c:721): Can't make utsns id"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("firstErrors = %q, want %q (the harmless rlimit line left out)", got, want)
	}
	if got := firstErrors(filepath.Join(dir, "missing"), 5); got != nil {
		t.Errorf("firstErrors of a missing log = %q", got)
	}
	e := &Error{Op: "dump", Err: errors.New("exit status 1"), First: want, Log: p}
	msg := e.Error()
	for _, s := range append(want, "criu dump: exit status 1", "criu's log: "+p) {
		if !strings.Contains(msg, s) {
			t.Errorf("Error() = %q, lacks %q", msg, s)
		}
	}
	if !errors.Is(e, ErrCRIU) {
		t.Error("an *Error does not wrap ErrCRIU")
	}
}
