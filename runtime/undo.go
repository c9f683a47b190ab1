package runtime

// undo collects the reverse steps of a multi-step operation; on failure they run newest first,
// so every function that builds something undoes it in one place (incus's revert pattern).
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }

// run undoes everything recorded so far.
func (u *undo) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}
