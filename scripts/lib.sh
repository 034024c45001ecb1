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
