package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progressOut is where a long command's progress goes: stdout as plain lines, or, on a
// terminal, stdout with the passing steps (template.Stepper) shown on one line that redraws
// itself. A pipe or a log file never gets carriage returns or escape sequences. The caller
// calls done when the work has ended.
func progressOut() (w io.Writer, done func()) {
	if !term.IsTerminal(int(os.Stdout.Fd())) {
		return os.Stdout, func() {}
	}
	b := &barWriter{out: os.Stdout}
	return b, b.done
}

// barWriter is a terminal's progress: a spinner with the current step, cleared before each
// plain line.
type barWriter struct {
	out *os.File
	bar *progressbar.ProgressBar
}

func (b *barWriter) Write(p []byte) (int, error) {
	if b.bar != nil {
		b.bar.Clear()
	}
	return b.out.Write(p)
}

// Step shows msg as the current step.
func (b *barWriter) Step(msg string) {
	if b.bar == nil {
		b.bar = progressbar.NewOptions(-1, progressbar.OptionSetWriter(b.out), progressbar.OptionSpinnerType(14),
			progressbar.OptionShowCount(), progressbar.OptionClearOnFinish(), progressbar.OptionSetElapsedTime(true),
			progressbar.OptionFullWidth())
	}
	b.bar.Describe("  " + msg)
	b.bar.Add(1)
}

func (b *barWriter) done() {
	if b.bar != nil {
		b.bar.Finish()
		b.bar = nil
	}
}
