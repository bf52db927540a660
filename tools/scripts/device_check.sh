#!/usr/bin/env bash
# On a machine with a real GPU (the `device` tool), from what tools/scripts/device_pack.sh staged
# in .device/: the adapter, the GPU parity tests (DIFFSIM_REQUIRE_GPU=1, so a missing adapter
# fails) and the `diffsim bench --backend gpu` tables of issue 8 (AntRun 64 → 4096 envs,
# RollingFlat 32 → 512 envs, both reductions), with CPU rows on the same machine for scale.
# Everything is logged under $OUT (the device tool's output folder; /tmp/diffsim-device here).
#
#   tools/scripts/device_check.sh [all|tests|bench]     # default all
#   DEVICE_QUICK=1 ...                                  # tiny sizes: to try the script itself
#
# Each command runs under `timeout`, so one hang cannot use up the call; the summary at the end
# lists what failed.
set -uo pipefail
cd "$(git -C "$(dirname "$0")" rev-parse --show-toplevel 2>/dev/null || echo "$(dirname "$0")/../..")"
OUT=${OUT:-/tmp/diffsim-device}
mkdir -p "$OUT"
what=${1:-all}
quick=${DEVICE_QUICK:-0}
cores=$(getconf _NPROCESSORS_ONLN) # not nproc: it reports OMP_NUM_THREADS once that is set
failed=()

if ! ldconfig -p | grep -q 'libvulkan.so.1'; then
    for f in .device/gl/*.deb; do dpkg -x "$f" /; done
    ldconfig
fi
nvidia_icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
if [ -e "$nvidia_icd" ]; then
    export VK_DRIVER_FILES=$nvidia_icd
    export __EGL_VENDOR_LIBRARY_FILENAMES=/usr/local/nvidia/share/glvnd/egl_vendor.d/10_nvidia.json
fi
export DIFFSIM_REQUIRE_GPU=1 DIFFSIM_ASSETS=$PWD/assets OMP_NUM_THREADS=1 WGPU_BACKEND=${WGPU_BACKEND:-vulkan}
diffsim=/tmp/diffsim-device-bin
xz -dc .device/diffsim.xz >"$diffsim" && chmod +x "$diffsim"
echo "staged from commit $(cat .device/commit 2>/dev/null || echo '?')" | tee "$OUT/summary.txt"

run() { # run LOG SECONDS COMMAND...: output to $OUT/LOG and the terminal
    local log=$1 secs=$2
    shift 2
    echo "\$ $*" | tee -a "$OUT/$log"
    local t0=$SECONDS
    timeout "$secs" "$@" 2>&1 | tee -a "$OUT/$log"
    local rc=${PIPESTATUS[0]}
    echo "[rc $rc, $((SECONDS - t0)) s]" | tee -a "$OUT/$log"
    [ "$rc" = 0 ] || failed+=("$* (rc $rc)")
}

run gpu_info.txt 60 "$diffsim" gpu-info

if [ "$what" = all ] || [ "$what" = tests ]; then
    mkdir -p /tmp/diffsim-tests
    for t in .device/tests/*.xz; do
        name=$(basename "$t" .xz)
        xz -dc "$t" >"/tmp/diffsim-tests/$name" && chmod +x "/tmp/diffsim-tests/$name"
        filter=()
        [ "$quick" = 1 ] && filter=(kernels_match_cpu_deterministic gpu_ant_articulation_kernels_match_cpu)
        run tests.log 300 "/tmp/diffsim-tests/$name" --test-threads="$cores" "${filter[@]}"
    done
fi

if [ "$what" = all ] || [ "$what" = bench ]; then
    if [ "$quick" = 1 ]; then
        ant=(--envs 64 --steps 2 --horizon 2) rf=(--envs 1 --steps 1 --horizon 1) rf_atomic=("${rf[@]}") rf_cpu=("${rf[@]}")
    else
        ant=(--envs 64,256,1024,4096 --steps 8 --horizon 8)
        rf=(--envs 32,128,512 --steps 4 --horizon 4) rf_atomic=(--envs 32,512 --steps 4 --horizon 4)
        rf_cpu=(--envs 32 --steps 2 --horizon 2)
    fi
    run bench.txt 240 "$diffsim" bench --task ant-run --backend gpu "${ant[@]}"
    run bench.txt 240 "$diffsim" bench --task ant-run --backend cpu --threads "$cores" "${ant[@]}"
    run bench.txt 300 "$diffsim" bench --task rolling-flat --backend gpu "${rf[@]}"
    run bench.txt 300 "$diffsim" bench --task rolling-flat --backend gpu --gpu-scatter atomic "${rf_atomic[@]}"
    run bench.txt 240 "$diffsim" bench --task rolling-flat --backend cpu --threads "$cores" "${rf_cpu[@]}"
fi

{
    echo "failed: ${#failed[@]}"
    for f in "${failed[@]}"; do echo "  $f"; done
} | tee -a "$OUT/summary.txt"
[ "${#failed[@]}" = 0 ]
