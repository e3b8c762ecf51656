// Command kstatus prints the status that sigs.k8s.io/cli-utils' kstatus library
// (what Flux, kpt and cli-utils use) computes for one Kubernetes object, read as
// JSON on stdin (`kubectl get … -o json`), as one JSON line on stdout:
// {"status":"Current|InProgress|Failed|Terminating|…","message":"…"}.
// ctfleet's end-to-end tests use it to check what GitOps engines will read.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
)

func main() {
	data, err := io.ReadAll(os.Stdin)
	if err != nil {
		fail(2, "reading stdin: %v", err)
	}
	object := &unstructured.Unstructured{}
	if err := object.UnmarshalJSON(data); err != nil {
		fail(2, "stdin is not one Kubernetes object in JSON: %v", err)
	}
	result, err := status.Compute(object)
	if err != nil {
		fail(1, "kstatus could not compute a status: %v", err)
	}
	out, err := json.Marshal(map[string]string{"status": result.Status.String(), "message": result.Message})
	if err != nil {
		fail(1, "encoding the result: %v", err)
	}
	fmt.Println(string(out))
}

func fail(code int, format string, args ...any) {
	fmt.Fprintf(os.Stderr, "kstatus: "+format+"\n", args...)
	os.Exit(code)
}
