// Package deploy holds no code: it is the folder of the files that run
// inboxmq elsewhere (systemd/, k8s/, compose/; the Dockerfile is at the
// repository root) and watch it (grafana/, prometheus/). Its tests keep
// those files in step with the broker: the ports, probe paths and config
// keys they name are checked against broker.DefaultConfig and a running
// broker, the systemd unit with systemd-analyze, the image by building and
// running it, the alert rules and the dashboard's queries with promtool
// and against a live broker's /metrics.
package deploy
