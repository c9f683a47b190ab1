// Package revert collects the reverse steps of a multi-step operation, so that every function
// that builds something undoes it in one place (incus's shared/revert): on failure the steps run
// newest first; on success the caller forgets them.
package revert

import (
	"errors"
	"fmt"
)

// Steps are the reverse steps recorded so far; the zero value is ready to use.
type Steps []func() error

// Add records f, the reverse of a step just done, which cannot fail (or whose failure is logged
// where it happens).
func (u *Steps) Add(f func()) { *u = append(*u, func() error { f(); return nil }) }

// AddErr records f, the reverse of a step just done; Run reports its error.
func (u *Steps) AddErr(f func() error) { *u = append(*u, f) }

// Run undoes everything recorded so far, newest first, forgets it, and returns what failed.
func (u *Steps) Run() error {
	var errs []error
	for i := len(*u) - 1; i >= 0; i-- {
		if err := (*u)[i](); err != nil {
			errs = append(errs, err)
		}
	}
	*u = nil
	return errors.Join(errs...)
}

// Finish runs the steps when *err is set, and adds what they failed to undo to *err. Use as:
// defer u.Finish(&err).
func (u *Steps) Finish(err *error) {
	if *err == nil {
		return
	}
	if rerr := u.Run(); rerr != nil {
		*err = fmt.Errorf("%w (undoing: %w)", *err, rerr)
	}
}
