# diffsim: `make test` and `make train` install what is missing (apt packages for lavapipe,
# libtorch wheels into .torch/), set the environment, then run.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
TORCH_DIR := $(CURDIR)/.torch
LVP_ICD := /usr/share/vulkan/icd.d/lvp_icd.x86_64.json
export LIBTORCH := $(TORCH_DIR)/torch
export LD_LIBRARY_PATH := $(TORCH_DIR)/torch/lib$(if $(LD_LIBRARY_PATH),:$(LD_LIBRARY_PATH),)
export OMP_NUM_THREADS := 1
# `make test` installs lavapipe, so the GPU parity tests must find an adapter (no skipping).
export DIFFSIM_REQUIRE_GPU := 1
export XDG_RUNTIME_DIR := $(shell d=$${XDG_RUNTIME_DIR:-}; if [ -z "$$d" ] || [ ! -d "$$d" ]; then d=$$(mktemp -d); chmod 700 $$d; fi; echo $$d)
TASK ?= ant-run
LEARNER ?= sapo
ARGS ?= --envs 64 --horizon 32 --epochs 100 --threads 2

.PHONY: test train setup apt torch fmt lint bench check-grad device-pack

setup: apt torch

apt:
	@if ! ldconfig -p | grep -q 'libvulkan.so.1' || [ ! -e $(LVP_ICD) ]; then \
	  echo "installing mesa-vulkan-drivers (lavapipe) and EGL"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] && echo "" || echo sudo ); \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
	    mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0; \
	fi

torch:
	@if [ ! -e $(TORCH_DIR)/torch/lib/libtorch_cpu.so ]; then \
	  echo "installing libtorch 2.13.0 wheels into .torch/"; \
	  python3 -m pip install -q --no-cache-dir --no-deps --no-compile --target $(TORCH_DIR) \
	    torch==2.13.0 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cupti==13.0.85; \
	fi

fmt:
	cargo fmt --all -- --check

lint:
	cargo clippy --workspace --all-targets -- -D warnings

test: setup
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets -- -D warnings
	# The libtorch-free CLI of the real-GPU kit (make device-pack) must keep building.
	cargo clippy -p diffsim-tools --no-default-features -- -D warnings
	cargo nextest run --workspace --no-fail-fast
	# Doctests of the crates that do not link libtorch: `cargo test --doc` on the tch crates rebuilds
	# torch-sys's C++ shim (~1-2 min) for crates that have no doctests.
	cargo test --doc -p diffsim-engine -p diffsim-systems -p diffsim-tasks -p diffsim-tests
	# GPU backend throughput on this machine's adapter (lavapipe in CI), for the log; a debug
	# build, so the host side is slow: compare GPU rows with each other, not with release numbers.
	cargo run -q -p diffsim-tools --bin diffsim -- bench --task chain-reach --backend gpu --envs 16,256 --steps 32 --horizon 16
	cargo run -q -p diffsim-tools --bin diffsim -- bench --task ant-run --backend gpu --envs 64 --steps 8 --horizon 8
	cargo run -q -p diffsim-tools --bin diffsim -- bench --task rolling-flat --backend gpu --envs 8 --steps 1 --horizon 1

train: setup
	cargo run --release -p diffsim-tools --bin diffsim -- train --task $(TASK) --learner $(LEARNER) $(ARGS)

check-grad: setup
	cargo run --release -p diffsim-tools --bin diffsim -- check-grad --task $(TASK)

bench: setup
	cargo run --release -p diffsim-tools --bin diffsim -- bench --task $(TASK)

# What a GPU machine without Rust or libtorch needs to run the GPU checks: see README
# "Checking on a real GPU" (tools/scripts/device_check.sh runs there).
device-pack: setup
	tools/scripts/device_pack.sh
