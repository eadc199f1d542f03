#!/usr/bin/env bash
# The GPU check (issue 12): CUDA tests, overhead on CUDA, cost multiple of the default; and
# (issue 19) FSDP2/DDP on CUDA with NCCL, one process per GPU (FSDP2 shards only with 2+ GPUs).
#
#   bash benchmarks/gpu_check.sh                      # on the GPU machine: est. 1-2 min on an H200
#   bash benchmarks/gpu_check.sh --device cpu --quick # anywhere: checks the script end to end
#   bash benchmarks/gpu_check.sh --prepare-wheels     # here, before: wheels for a machine offline
#
# Prefers the torch already installed (a GPU machine has its own CUDA build): lrfind runs from
# this checkout through PYTHONPATH (nothing to build), and only missing light dependencies are
# installed: from wheels in $GPU_CHECK_WHEELS (default .whl/, see --prepare-wheels) when there
# are any, else from the package index. Without torch it installs the pinned set
# (pip install -e ".[dev]" -c constraints.txt). Arguments go to benchmarks/gpu_check.py; the
# output is also written to $OUT/gpu_check.log when OUT is set. PYTHON picks the interpreter.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
PY=${PYTHON:-$(command -v python3 || command -v python)}
WHEELS=${GPU_CHECK_WHEELS:-.whl}
# The GPU machine's Python (see the device notes); the wheels must match it.
WHEEL_PYTHON=${WHEEL_PYTHON:-3.12}
# lrfind needs pydantic, which the GPU machine's image lacks; these are it and its needs.
WHEEL_PINS=(
    "pydantic==$(sed -n 's/^pydantic==//p' constraints.txt)"
    "pydantic_core==$(sed -n 's/^pydantic_core==//p' constraints.txt)"
    "annotated-types==0.8.0"
    "typing-inspection==0.4.5"
    "typing_extensions==4.16.0"
)

if [[ ${1:-} == --prepare-wheels ]]; then
    mkdir -p "$WHEELS"
    "$PY" -m pip download -q --no-deps --only-binary=:all: --python-version "$WHEEL_PYTHON" \
        --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 \
        --platform manylinux2014_x86_64 -d "$WHEELS" "${WHEEL_PINS[@]}"
    if [[ -d .git/info && $WHEELS == .whl ]] && ! grep -qx '/.whl/' .git/info/exclude 2>/dev/null; then
        echo '/.whl/' >>.git/info/exclude  # never committed
    fi
    ls "$WHEELS"
    echo "carry $WHEELS to the GPU machine with the checkout (device run: carry [\"$WHEELS\"])"
    exit 0
fi

if "$PY" -c "import torch" 2>/dev/null; then
    # pip names of the light dependencies this interpreter lacks
    missing=$("$PY" - <<'EOF'
import importlib.util
names = {"typer": "typer", "rich": "rich", "matplotlib": "matplotlib", "numpy": "numpy",
         "yaml": "pyyaml", "pydantic": "pydantic", "sklearn": "scikit-learn",
         "pytest": "pytest", "hypothesis": "hypothesis"}
print(" ".join(pip for module, pip in names.items() if importlib.util.find_spec(module) is None))
EOF
    )
    if [[ -n $missing ]]; then
        echo "missing: $missing"
        if compgen -G "$WHEELS/*.whl" >/dev/null; then
            site=${TMPDIR:-/tmp}/lrfind-gpu-check-site
            "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
                --target "$site" "$WHEELS"/*.whl
            export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
        else
            # shellcheck disable=SC2086  # one word per package
            "$PY" -m pip install -q -c constraints.txt $missing ||
                echo "warning: could not install $missing (offline? see --prepare-wheels)"
        fi
    fi
else
    echo "torch is not installed: installing the pinned set (constraints.txt)"
    "$PY" -m pip install -q -e ".[dev]" -c constraints.txt
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"

# What the check cannot run without (typer, rich, matplotlib, sklearn are not imported by it).
"$PY" - <<'EOF' || exit 2
import sys
try:
    import numpy, pydantic, pytest, torch, yaml  # noqa: F401
    import lrfind.engine.loop  # noqa: F401
except Exception as error:
    sys.exit(f"error: the check cannot start ({type(error).__name__}: {error}); "
             "it needs torch, numpy, pyyaml, pydantic and pytest")
EOF

command=("$PY" benchmarks/gpu_check.py "$@")
export PYTHONUNBUFFERED=1
if [[ -n ${OUT:-} ]]; then
    mkdir -p "$OUT"
    timeout "${GPU_CHECK_TIMEOUT:-300}" "${command[@]}" 2>&1 | tee "$OUT/gpu_check.log"
else
    timeout "${GPU_CHECK_TIMEOUT:-300}" "${command[@]}"
fi

# FSDP2 and DDP on CUDA with NCCL (issue 19), one process per visible GPU: range_test as a
# torchrun user calls it (fresh and stepped Adam, memory and disk snapshots; every rank the same
# answer, state bit-exact afterwards), then the CLI with distributed.strategy fsdp and a disk
# snapshot. Skipped without CUDA.
gpus=$("$PY" -c "import torch; print(torch.cuda.device_count() if torch.cuda.is_available() else 0)")
if ((gpus > 0)); then
    ranks_out=$(mktemp -d "${TMPDIR:-/tmp}/lrfind-fsdp-XXXXXX")
    fsdp_log=${OUT:-$ranks_out}/gpu_check_fsdp.log
    {
        echo "== FSDP2 / DDP through range_test on $gpus GPU(s), NCCL"
        LRFIND_RANKS_DEVICE=cuda timeout "${GPU_CHECK_TIMEOUT:-300}" "$PY" -m torch.distributed.run \
            --standalone --nproc_per_node="$gpus" -m tests.engine.ranks_library "$ranks_out"
        "$PY" - "$ranks_out" <<'EOF'
import json, sys
from pathlib import Path
ranks = [json.loads(p.read_text()) for p in sorted(Path(sys.argv[1]).glob("rank*.json"))]
assert ranks and all(r == ranks[0] for r in ranks), "the ranks returned different results"
for case, record in ranks[0].items():
    if isinstance(record, dict):
        print(f"{case:22} exact={record['exact']} lr={record['suggestion']}")
        assert record["exact"], f"{case}: state not restored exactly"
print("FSDP2/DDP on CUDA: ok")
EOF
        echo "== lrfind sweep --nproc $gpus, distributed.strategy fsdp, disk snapshot"
        timeout "${GPU_CHECK_TIMEOUT:-300}" "$PY" -m lrfind sweep configs/quickstart.yaml \
            --nproc "$gpus" --set device=cuda --set distributed.strategy=fsdp \
            --set sweep.snapshot=disk --out "$ranks_out/cli-run" --quiet
        if [[ -z $(find "$ranks_out/cli-run" -name '.lrfind-snapshot-*') ]]; then
            echo "disk snapshot folder removed: ok"
        else
            echo "error: the disk snapshot folder was left behind" && exit 1
        fi
    } 2>&1 | tee "$fsdp_log"
else
    echo "no CUDA device: the FSDP2/NCCL check is skipped"
fi
