//go:build linux

// This file lets yield.go declare a function without a body, which the
// go:linkname to runtime.goyield fills in: the compiler accepts one only
// in a package that has assembly.
