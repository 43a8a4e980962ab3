//go:build unix

package pgtest

import (
	"os/exec"
	"syscall"
)

// ownGroup starts cmd in a process group of its own: a Ctrl-C at the terminal reaches the tests,
// not PostgreSQL, which the watchdog stops.
func ownGroup(cmd *exec.Cmd) { cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} }
