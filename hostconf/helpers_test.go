package hostconf

// Helpers the tests use.

// Keys lists every key the host configuration knows, in config show's order.
func Keys() []string {
	out := make([]string, len(specs))
	for i, s := range specs {
		out[i] = s.key
	}
	return out
}

// Default returns key's built-in default as a file would spell it, and whether key is known.
func Default(key string) (string, bool) {
	s, ok := specByKey[key]
	if !ok {
		return "", false
	}
	return s.def, true
}
