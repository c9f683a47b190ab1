package main

import (
	"fmt"
	"net/http"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/vpsctl/vpsctl/internal/spec"
	"github.com/vpsctl/vpsctl/network"
	"github.com/vpsctl/vpsctl/runtime"
	"github.com/vpsctl/vpsctl/store"
)

// TestExitTable: every sentinel of the table, wrapped as the library returns it, maps to its
// own row (no wider row before it shadows it), and --help lists every code.
func TestExitTable(t *testing.T) {
	for _, row := range exitTable {
		for _, e := range row.errs {
			code, status := classify(fmt.Errorf("VPS 101: %w", e))
			if code != row.code || status != row.http {
				t.Errorf("%v: exit %d (HTTP %d), want %d (HTTP %d)", e, code, status, row.code, row.http)
			}
		}
	}
	listed := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^   (\d+) `).FindAllStringSubmatch(exitHelp, -1) {
		n, _ := strconv.Atoi(m[1])
		listed[n] = true
	}
	for _, row := range exitTable {
		if !listed[row.code] {
			t.Errorf("exit %d is not in --help", row.code)
		}
	}
	if code, status := classify(fmt.Errorf("boom")); code != exitSystem || status != statusInternalServerError {
		t.Errorf("an unknown error: exit %d (HTTP %d)", code, status)
	}
	if code, _ := classify(nil); code != exitOK {
		t.Errorf("nil: exit %d", code)
	}
	if code, _ := classify(&runtime.CommandError{Status: 127, Err: fmt.Errorf("no such file")}); code != 127 {
		t.Errorf("a command that did not start: exit %d, want its own 127", code)
	}
}

// TestExitCodesVzctl pins the cases vzctl has to vzctl's numbers (include/vzerror.h): a script
// written for vzctl reads them the same.
func TestExitCodesVzctl(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want int
	}{
		{store.ErrLocked, 9}, {runtime.ErrCheckpoint, 16}, {runtime.ErrRestore, 17}, {runtime.ErrUsage, 20},
		{runtime.ErrBadValue, 21}, {runtime.ErrNotRunning, 31}, {runtime.ErrRunning, 32}, {store.ErrNotExist, 43},
		{store.ErrExist, 44}, {network.ErrBadIP, 71}, {network.ErrBadNameserver, 72}, {network.ErrBadSearchDomain, 73},
		{runtime.ErrUserPasswd, 74}, {network.ErrIPInUse, 78}, {spec.ErrBadDevice, 86}, {store.ErrNoTemplate, 91}, {runtime.ErrBootTimeout, 133},
	} {
		if got := exitCode(fmt.Errorf("x: %w", tc.err)); got != tc.want {
			t.Errorf("%v: exit %d, want vzctl's %d", tc.err, got, tc.want)
		}
	}
}

// TestExitCodesREADME: README's table lists exactly the codes of the table here.
func TestExitCodesREADME(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(b), "### Exit codes")
	if i < 0 {
		t.Fatal("README has no exit codes section")
	}
	inREADME := map[int]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\| (\d+) \|`).FindAllStringSubmatch(string(b[i:]), -1) {
		n, _ := strconv.Atoi(m[1])
		inREADME[n] = true
	}
	want := map[int]bool{exitOK: true, exitSystem: true}
	for _, row := range exitTable {
		want[row.code] = true
	}
	for c := range want {
		if !inREADME[c] {
			t.Errorf("exit %d is not in README's table", c)
		}
	}
	for c := range inREADME {
		if !want[c] {
			t.Errorf("README lists exit %d, which vpsctl does not use", c)
		}
	}
}

// TestHTTPStatuses: the exit table's statuses are net/http's (which vpsctl does not link).
func TestHTTPStatuses(t *testing.T) {
	for _, c := range []struct{ ours, http int }{
		{statusOK, http.StatusOK}, {statusBadRequest, http.StatusBadRequest}, {statusNotFound, http.StatusNotFound},
		{statusConflict, http.StatusConflict}, {statusUnprocessableEntity, http.StatusUnprocessableEntity},
		{statusInternalServerError, http.StatusInternalServerError}, {statusBadGateway, http.StatusBadGateway},
		{statusServiceUnavailable, http.StatusServiceUnavailable}, {statusGatewayTimeout, http.StatusGatewayTimeout},
	} {
		if c.ours != c.http {
			t.Errorf("status %d, net/http's is %d", c.ours, c.http)
		}
	}
}
