#!/usr/bin/env bash
# `make demo`: control plane, emulator with sample data, operator, a sample sync, a sentinel bump and its rollout.
# `make demo-down` (this script with "down") stops everything it started.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=.venv/bin/python
DEMO=.demo
export KUBECONFIG="$PWD/.cluster/kubeconfig"
K=".cluster/bin/kubectl"

stop() {
  for name in operator emulator; do
    if [[ -f "$DEMO/$name.pid" ]]; then
      kill "$(cat "$DEMO/$name.pid")" 2>/dev/null || true
      rm -f "$DEMO/$name.pid"
    fi
  done
  $PY hack/controlplane.py down --dir .cluster
}

if [[ "${1:-}" == down ]]; then stop; exit 0; fi

mkdir -p "$DEMO"
[[ -f "$DEMO/operator.pid" || -f "$DEMO/emulator.pid" ]] && stop >/dev/null
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
wait_for() {  # wait_for <seconds> <description> <command...>
  local seconds=$1 what=$2; shift 2
  for _ in $(seq "$((seconds * 4))"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "demo: $what did not happen within ${seconds}s; logs: $DEMO/operator.log $DEMO/emulator.log .cluster/logs/" >&2
  exit 1
}

step "Starting the local control plane (etcd, kube-apiserver, kube-controller-manager)"
$PY hack/controlplane.py up --dir .cluster

step "Starting the App Configuration emulator with sample data (examples/store.yaml)"
cp examples/store.yaml "$DEMO/store.yaml"
$PY -m appconfig_sync emulator --data "$DEMO/store.yaml" >"$DEMO/emulator.out" 2>"$DEMO/emulator.log" &
echo $! >"$DEMO/emulator.pid"
wait_for 15 "the emulator's connection string" grep -q '^Endpoint=' "$DEMO/emulator.out"
CONNECTION_STRING="$(head -1 "$DEMO/emulator.out")"
echo "store: ${CONNECTION_STRING%%;*}"

step "Installing the CRD and a sample AppConfigSync in namespace demo"
$K apply -f crds/
$K wait --for=condition=Established crd/appconfigsyncs.appconfigsync.dev
$K create namespace demo --dry-run=client -o yaml | $K apply -f -
$K -n demo create secret generic appconfig --from-literal=connectionString="$CONNECTION_STRING" \
  --dry-run=client -o yaml | $K apply -f - >/dev/null
echo "secret/appconfig configured (connection string not shown)"
$K -n demo apply -f examples/deployment.yaml -f examples/appconfigsync.yaml

step "Starting the operator (log: $DEMO/operator.log)"
$PY -m appconfig_sync run >"$DEMO/operator.log" 2>&1 &
echo $! >"$DEMO/operator.pid"
wait_for 60 "the first sync" $K -n demo get configmap web-config
$K -n demo wait --for=condition=Ready acs/web --timeout=60s >/dev/null
$K -n demo get acs
$K -n demo get configmap web-config -o jsonpath='{.data}'; echo
echo "ReplicaSets of deployment/web: $($K -n demo get rs -l app=web -o name | wc -l)"

step "Changing message, then bumping the Sentinel (as you would with az appconfig kv set)"
$PY - "$CONNECTION_STRING" <<'PY'
import sys
from azure.appconfiguration import AzureAppConfigurationClient, ConfigurationSetting
with AzureAppConfigurationClient.from_connection_string(sys.argv[1]) as store:
    store.set_configuration_setting(ConfigurationSetting(key="message", value="Hello World Refreshed!"))
    store.set_configuration_setting(ConfigurationSetting(key="Sentinel", value="2"))
PY
wait_for 60 "the refreshed ConfigMap" bash -c "$K -n demo get configmap web-config -o jsonpath='{.data.message}' | grep -q Refreshed"
$K -n demo get configmap web-config -o jsonpath='{.data}'; echo
wait_for 30 "the rollout" bash -c "[[ \$($K -n demo get rs -l app=web -o name | wc -l) -ge 2 ]]"
echo "ReplicaSets of deployment/web: $($K -n demo get rs -l app=web -o name | wc -l) (the pod template got appconfigsync.dev/config-hash)"
$K -n demo get events --field-selector involvedObject.kind=AppConfigSync

step "Look around"
cat <<TXT
  export KUBECONFIG=$KUBECONFIG
  $K -n demo get acs                        # Ready, Reason, Keys, Last Sync
  $K -n demo describe acs web               # status conditions and Events
  $K -n demo get configmap web-config -o yaml
  $K -n demo get rs -l app=web              # one ReplicaSet per rollout
  tail -f $DEMO/operator.log
Change the store with the Azure SDK (connection string in $DEMO/emulator.out), bump Sentinel, and watch.
Stop everything with: make demo-down
TXT
