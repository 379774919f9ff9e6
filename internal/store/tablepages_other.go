//go:build !linux

package store

import "errors"

// tablePagesSupported: elsewhere the store does not release table pages.
const tablePagesSupported = false

var errNoMaps = errors.New("no /proc/self/maps here")

func readMaps() ([]mappedFile, error) { return nil, errNoMaps }

func madviseDontNeed(start, n uintptr) error { return errNoMaps }

func pageOut(start, n uintptr) {}
