package metrics

// Helpers the tests use.

// Names lists the metric families Write emits, in order.
func Names() []string {
	out := make([]string, len(families))
	for i, f := range families {
		out[i] = f.name
	}
	return out
}
