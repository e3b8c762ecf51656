// Command pause is the process of every pod sandbox of the local cluster
// (hack/stack.sh up --cluster): it holds the pod's namespaces open, reaps the
// children the pod's shared PID namespace hands it, and exits on SIGTERM or SIGINT.
// Test infrastructure only; there is no registry to pull a pause image from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	signals := make(chan os.Signal, 8)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range signals {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			pid, err := syscall.Wait4(-1, nil, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
