// Command k8s-cluster is one binary holding the real Kubernetes components the tests
// start: `k8s-cluster etcd|kube-apiserver|kube-controller-manager|kube-scheduler|
// kubelet|kubectl ARGS...`, plus `k8s-cluster pki --dir DIR ...` which writes the certificates,
// keys and kubeconfigs of a private cluster. Nothing of Kubernetes is copied here: the
// components come from their Go modules, pinned in go.mod. `etcd-compact` compacts
// etcd's history (for tests of 410 Gone).
package main

import (
	"context"
	"fmt"
	"os"

	"k8s.io/component-base/cli"
	kubectl "k8s.io/kubectl/pkg/cmd"
	apiserver "k8s.io/kubernetes/cmd/kube-apiserver/app"
	controllermanager "k8s.io/kubernetes/cmd/kube-controller-manager/app"
	scheduler "k8s.io/kubernetes/cmd/kube-scheduler/app"
	kubelet "k8s.io/kubernetes/cmd/kubelet/app"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: k8s-cluster etcd|kube-apiserver|kube-controller-manager|kube-scheduler|kubelet|kubectl|pki|etcd-compact ARGS...")
		os.Exit(2)
	}
	name, args := os.Args[1], os.Args[2:]
	os.Args = append([]string{name}, args...)
	switch name {
	case "etcd":
		os.Exit(runEtcd(args))
	case "etcd-compact":
		os.Exit(runEtcdCompact(args))
	case "pki":
		os.Exit(runPKI(args))
	case "kube-apiserver":
		os.Exit(cli.Run(apiserver.NewAPIServerCommand()))
	case "kube-controller-manager":
		os.Exit(cli.Run(controllermanager.NewControllerManagerCommand()))
	case "kube-scheduler":
		os.Exit(cli.Run(scheduler.NewSchedulerCommand()))
	case "kubelet":
		os.Exit(cli.Run(kubelet.NewKubeletCommand(context.Background())))
	case "kubectl":
		os.Exit(cli.Run(kubectl.NewDefaultKubectlCommand()))
	default:
		fmt.Fprintf(os.Stderr, "k8s-cluster: unknown component %q\n", name)
		os.Exit(2)
	}
}
