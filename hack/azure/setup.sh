#!/usr/bin/env bash
# Creates what dev8-agent needs in an Azure subscription, with the Azure CLI:
# per region a resource group and a storage account with the settings
# preflight checks (StorageV2, Shared Key on, public network access, large
# file shares, share soft delete), one user-assigned managed identity with a
# federated credential for the cluster's service account (workload
# identity), the custom role of hack/azure/role.json assigned to that
# identity on each resource group (nothing at subscription scope), and the
# resource providers registered.
#
# Idempotent: what exists is left as it is or brought to the settings
# above; running it twice changes nothing the second time. --dry-run prints
# every command (each existence check as well) without running any.
#
#   hack/azure/setup.sh --subscription SUB --regions eastus,westeurope \
#     --issuer https://oidc.example/... [--prefix dev8] [--namespace dev8] \
#     [--service-account dev8-agent] [--identity-group RG] \
#     [--subnet SUBNET_ID]... [--pull-identity IDENTITY_ID]... [--dry-run]
#
# --subnet (azure.regions[].subnetIds) grants Network Contributor on that
# subnet (the join action of VNet-injected groups); --pull-identity
# (registries[].identity) grants Managed Identity Operator on that identity
# (the assign action): both on those resources only.
#
# Then: dev8-agent preflight --config FILE (README, "Running against Azure").
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
role_file="$here/role.json"
sub="" regions="" issuer="" prefix="dev8" namespace="dev8" sa="dev8-agent" id_rg="" dry=0
subnets=() pull_ids=()
retention_days=7

usage() {
  sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'
  exit "${1:-2}"
}

while [ $# -gt 0 ]; do
  case "$1" in
    --subscription) sub="${2:?}"; shift 2 ;;
    --regions) regions="${2:?}"; shift 2 ;;
    --issuer) issuer="${2:?}"; shift 2 ;;
    --prefix) prefix="${2:?}"; shift 2 ;;
    --namespace) namespace="${2:?}"; shift 2 ;;
    --service-account) sa="${2:?}"; shift 2 ;;
    --identity-group) id_rg="${2:?}"; shift 2 ;;
    --subnet) subnets+=("${2:?}"); shift 2 ;;
    --pull-identity) pull_ids+=("${2:?}"); shift 2 ;;
    --dry-run) dry=1; shift ;;
    -h|--help) usage 0 ;;
    *) echo "setup.sh: unknown argument '$1'" >&2; usage 2 ;;
  esac
done

[ -n "$sub" ] || { echo "setup.sh: --subscription is required" >&2; exit 2; }
[ -n "$regions" ] || { echo "setup.sh: --regions is required" >&2; exit 2; }
[ -n "$issuer" ] || { echo "setup.sh: --issuer (the cluster's OIDC issuer URL) is required" >&2; exit 2; }
case "$issuer" in https://*) ;; *) echo "setup.sh: --issuer must be an https:// URL" >&2; exit 2 ;; esac
[[ "$prefix" =~ ^[a-z][a-z0-9]{0,9}$ ]] || { echo "setup.sh: --prefix must be 1-10 lowercase letters and digits" >&2; exit 2; }
[[ "$sub" =~ ^[0-9a-fA-F-]{36}$ ]] || { echo "setup.sh: --subscription must be a subscription id (GUID)" >&2; exit 2; }
for id in "${subnets[@]}" "${pull_ids[@]}"; do
  [[ "$id" =~ ^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/[A-Za-z0-9./_()-]+$ ]] ||
    { echo "setup.sh: '$id' is not a resource id" >&2; exit 2; }
done

IFS=, read -r -a region_list <<<"$regions"
first_region="${region_list[0]}"
[ -n "$id_rg" ] || id_rg="rg-$prefix-$first_region"
identity="$prefix-agent"
role_name="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["Name"])' "$role_file")"

# Prints a command as it would be typed, one line, prefixed with "+ ".
show() {
  printf '+'
  printf ' %q' "$@"
  printf '\n'
}

# Runs a command that changes something (printed in either mode).
run() {
  show "$@"
  [ "$dry" -eq 1 ] || "$@"
}

# Runs a read that says whether something exists (printed in either mode);
# in a dry run nothing is assumed to exist.
exists() {
  show "$@"
  [ "$dry" -eq 0 ] && "$@" >/dev/null 2>&1
}

# A read whose output is needed (called inside $(...): the command line
# goes to fd 3, the real stdout); a placeholder in a dry run.
exec 3>&1
value() {
  local placeholder="$1"
  shift
  if [ "$dry" -eq 1 ]; then
    show "$@" >&3
    printf '%s' "$placeholder"
  else
    "$@"
  fi
}

# Storage account names: 3-24 lowercase letters and digits, global.
account_of() {
  local r="${1//[^a-z0-9]/}"
  printf '%s' "${prefix}${r}" | cut -c1-24
}

run az account set --subscription "$sub"

for ns in Microsoft.ContainerInstance Microsoft.Storage Microsoft.ManagedIdentity; do
  run az provider register --namespace "$ns" --wait
done

for region in "${region_list[@]}"; do
  rg="rg-$prefix-$region"
  acct="$(account_of "$region")"
  run az group create --name "$rg" --location "$region" --output none
  if ! exists az storage account show --name "$acct" --resource-group "$rg"; then
    run az storage account create --name "$acct" --resource-group "$rg" --location "$region" \
      --kind StorageV2 --sku Standard_LRS --enable-large-file-share \
      --allow-shared-key-access true --public-network-access Enabled --default-action Allow \
      --min-tls-version TLS1_2 --output none
  fi
  # Brings an existing account to the settings preflight checks (a no-op
  # when it has them). Large file shares cannot be turned off again.
  run az storage account update --name "$acct" --resource-group "$rg" \
    --enable-large-file-share --allow-shared-key-access true \
    --public-network-access Enabled --default-action Allow --output none
  run az storage account file-service-properties update --account-name "$acct" \
    --resource-group "$rg" --enable-delete-retention true \
    --delete-retention-days "$retention_days" --output none
done

run az identity create --name "$identity" --resource-group "$id_rg" --location "$first_region" \
  --output none
subject="system:serviceaccount:$namespace:$sa"
if ! exists az identity federated-credential show --name "$identity-$namespace" \
  --identity-name "$identity" --resource-group "$id_rg"; then
  run az identity federated-credential create --name "$identity-$namespace" \
    --identity-name "$identity" --resource-group "$id_rg" --issuer "$issuer" \
    --subject "$subject" --audiences api://AzureADTokenExchange
fi

# The custom role, assignable in this subscription.
role_json="$(sed "s|/subscriptions/SUBSCRIPTION_ID|/subscriptions/$sub|" "$role_file")"
if [ "$dry" -eq 1 ]; then
  echo "# role definition ($role_file, for this subscription):"
  printf '%s\n' "$role_json" | sed 's/^/#   /'
fi
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
printf '%s\n' "$role_json" >"$tmp"
role_id="$(value '' az role definition list --custom-role-only true --name "$role_name" \
  --scope "/subscriptions/$sub" --query "[0].id" --output tsv)"
if [ -n "$role_id" ]; then
  run az role definition update --role-definition "$tmp" --output none
else
  run az role definition create --role-definition "$tmp" --output none
fi

principal="$(value '<principalId of '"$identity"'>' az identity show --name "$identity" \
  --resource-group "$id_rg" --query principalId --output tsv)"
client_id="$(value '<clientId of '"$identity"'>' az identity show --name "$identity" \
  --resource-group "$id_rg" --query clientId --output tsv)"
for region in "${region_list[@]}"; do
  scope="/subscriptions/$sub/resourceGroups/rg-$prefix-$region"
  n="$(value 0 az role assignment list --assignee "$principal" --role "$role_name" \
    --scope "$scope" --query 'length(@)' --output tsv)"
  if [ "${n:-0}" = 0 ]; then
    run az role assignment create --assignee-object-id "$principal" \
      --assignee-principal-type ServicePrincipal --role "$role_name" --scope "$scope" \
      --output none
  fi
done

# The grants of the optional features, on their resources only.
grant() { # ROLE SCOPE
  local n
  n="$(value 0 az role assignment list --assignee "$principal" --role "$1" --scope "$2" \
    --query 'length(@)' --output tsv)"
  if [ "${n:-0}" = 0 ]; then
    run az role assignment create --assignee-object-id "$principal" \
      --assignee-principal-type ServicePrincipal --role "$1" --scope "$2" --output none
  fi
}
for id in "${subnets[@]}"; do grant "Network Contributor" "$id"; done
for id in "${pull_ids[@]}"; do grant "Managed Identity Operator" "$id"; done

cat <<EOF
# Done. The agent's configuration (azure section) and environment:
#   azure:
#     auth: workloadIdentity
#     subscriptionId: "$sub"
#     regions:
EOF
for region in "${region_list[@]}"; do
  printf '#       - { name: %s, resourceGroup: rg-%s-%s, storageAccount: %s }\n' \
    "$region" "$prefix" "$region" "$(account_of "$region")"
done
cat <<EOF
#   service account $namespace/$sa annotated azure.workload.identity/client-id: $client_id
# Then: dev8-agent preflight --config FILE
EOF
