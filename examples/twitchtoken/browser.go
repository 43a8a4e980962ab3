package main

import (
	"io"

	"github.com/pkg/browser"
)

// openQuietly opens the system browser at u, as the library's default opener [browser.OpenURL]
// does, but throws away what the opener program prints. Without a browser, xdg-open prints a line
// for each browser it tried and then the URL, state and all, twice; newToken has already printed
// the URL once, and says so if the browser could not be opened.
//
// pkg/browser takes the programs' output from its package variables, so this sets them; the
// command opens one browser at a time.
func openQuietly(u string) error {
	browser.Stdout, browser.Stderr = io.Discard, io.Discard
	return browser.OpenURL(u)
}
