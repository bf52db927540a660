#!/usr/bin/env bash
# Stages into .device/ what a GPU machine with neither Rust nor this libtorch needs to run
# diffsim's GPU checks (tools/scripts/device_check.sh), under the 64 MiB a device call carries:
#   .device/diffsim.xz      release `diffsim` without the `learn` feature (no libtorch),
#                           stripped and xz-compressed
#   .device/tests/*.xz      the GPU parity test binaries (debug, as `make test` builds them),
#                           stripped and xz-compressed
#   .device/gl/*.deb        the Vulkan loader and EGL/GL dispatch packages, unpacked there
# Run from anywhere in the repository, after `make setup`. Prints the staged size. .device/ is
# git-ignored: a device call takes it with `carry: [".device"]` and runs
# `tools/scripts/device_check.sh` (README, "Checking on a real GPU").
set -euo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel)"
out=.device
rm -rf "$out"
mkdir -p "$out/tests" "$out/gl"

cargo build --release -q -p diffsim-tools --no-default-features
if ldd target/release/diffsim | grep -q libtorch; then
    echo "device_pack: target/release/diffsim links libtorch; the no-default-features build did not take" >&2
    exit 1
fi
strip -o "$out/diffsim" target/release/diffsim
xz -T0 -6 "$out/diffsim"
# `learn` is the default: relink the full binary so a later `make train` finds it unchanged.
cargo build --release -q -p diffsim-tools

cargo test -q -p diffsim-tests --test 'gpu_*' --no-run --message-format=json 2>/dev/null |
    python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
' | while read -r name exe; do
    strip -o "$out/tests/$name" "$exe"
    xz -T0 -6 "$out/tests/$name"
done

lists=/tmp/diffsim-apt-amd64
mkdir -p "$lists/partial"
apt_opts=(-q -oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists="$lists")
apt-get "${apt_opts[@]}" update >/dev/null
# (as root apt warns that its sandbox user cannot write here; the download is unaffected)
(cd "$out/gl" && apt-get "${apt_opts[@]}" download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2 \
    2> >(grep -v 'unsandboxed' >&2) >/dev/null)

git rev-parse HEAD >"$out/commit"
size=$(du -sm "$out" | cut -f1)
echo "staged $(ls "$out/tests" | wc -l) test binaries, diffsim and $(ls "$out/gl" | wc -l) packages in $out/: ${size} MiB (a device call carries 64 MiB with the working tree)"
[ "$size" -le 56 ] || { echo "device_pack: ${size} MiB leaves no room for the working tree" >&2; exit 1; }
