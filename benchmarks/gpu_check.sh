#!/usr/bin/env bash
# The GPU check, in one command, on a machine with a CUDA GPU, CuPy and torch:
#
#     bash benchmarks/gpu_check.sh [OUT_DIR]        # default: ./gpu_check
#
# 1. the CuPy and torch versions and the devices they see;
# 2. the whole test suite on cupy, numpy and torch (torch runs on CUDA when a
#    GPU answers) and on cupy's second device when there is one;
# 3. both benchmarks with --backend cupy, against torch on CUDA;
# 4. the NCCL engine at world size 1 (one GPU cannot host two NCCL ranks);
# 5. a backend-parity run numpy vs cupy vs torch.
# Each step's output goes to OUT_DIR/<step>.log; OUT_DIR/report.md sums them
# up (status and last lines of each). Without a usable GPU it stops after step 1;
# otherwise a failed step is reported and the next one runs. Exit status: the
# number of failed steps.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu_check}"
mkdir -p "$out"
report="$out/report.md"
failed=0
python=${PYTHON:-python}

{
    echo "# xplayers GPU check"
    echo
    echo "$(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
    echo
} >"$report"

step() { # step NAME TIMEOUT_S COMMAND...: run, log, add its status and tail to the report
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.log" 2>&1
    local rc=$?
    local took=$((SECONDS - start))
    [ $rc -ne 0 ] && failed=$((failed + 1))
    {
        echo "## $name: $([ $rc -eq 0 ] && echo ok || echo "FAILED (exit $rc)") in ${took} s"
        echo
        echo '```'
        echo "\$ $*"
        tail -n 25 "$out/$name.log"
        echo '```'
        echo
    } >>"$report"
    echo "   exit $rc, ${took} s (log: $out/$name.log)"
}

step versions 120 "$python" - <<'EOF'
import platform
import xplayers
import xplayers.backends as backends
print("python", platform.python_version(), "| xplayers", xplayers.__version__)
try:
    import cupy
    print("cupy", cupy.__version__, "| CUDA runtime", cupy.cuda.runtime.runtimeGetVersion(),
          "| devices", cupy.cuda.runtime.getDeviceCount())
except Exception as exc:
    print("cupy: unavailable:", exc)
try:
    import torch
    print("torch", torch.__version__, "| CUDA", torch.version.cuda,
          "| available", torch.cuda.is_available(), "| devices", torch.cuda.device_count())
except Exception as exc:
    print("torch: unavailable:", exc)
for name, ok, info in backends.describe():
    where = f"devices {backends.devices(name)}" if ok else ""
    print(f"{name}: {'available' if ok else 'NOT available'}: {info} {where}")
if backends.unavailable_reason("cupy") is not None:
    raise SystemExit("no usable CuPy GPU: the checks below cannot run on one")
EOF

if [ $failed -ne 0 ]; then # nothing below means anything without a GPU: say so, run none
    echo "no usable CuPy GPU here: nothing else was run" | tee -a "$report"
    exit 1
fi

cases="cupy,numpy,torch"
second=$("$python" -c "import xplayers.backends as b; d=b.devices('cupy'); print(d[1] if len(d)>1 else '')" 2>/dev/null)
[ -n "$second" ] && cases="$cases,cupy:$second"
step tests 1800 "$python" -m pytest -q -x --backend "$cases" -p no:cacheprovider
step bench_conv 900 "$python" benchmarks/bench_conv.py --backend cupy
step bench_train_step 900 "$python" benchmarks/bench_train_step.py --backend cupy
step nccl_world_size_1 300 "$python" - <<'EOF'
import numpy as np
import xplayers
from xplayers import distributed
from xplayers.data import get_digits_data
from xplayers.models import FullyConnectedNet
from xplayers.solver import Solver

comm = distributed.init("nccl")
print("engine", comm.engine, "rank", comm.rank, "of", comm.size)
x = xplayers.asarray(np.arange(6.0).reshape(2, 3), backend="cupy")
mean = comm.allreduce_mean({"x": x})["x"]
assert xplayers.backends.backend_of(mean) == "cupy"
np.testing.assert_array_equal(xplayers.to_numpy(mean), np.arange(6.0).reshape(2, 3))
data = get_digits_data(image=False)
runs = []
for c in (None, comm):
    model = FullyConnectedNet([50], input_dim=64, num_classes=10, dtype="float64", seed=0,
                              backend="cupy")
    solver = Solver(model, data, num_epochs=1, batch_size=100, seed=0, verbose=False, comm=c)
    solver.train()
    runs.append(solver.loss_history)
gap = float(np.max(np.abs(np.subtract(*runs))))
print(f"NCCL at world size 1 vs no communicator: max |loss difference| {gap:.2e}")
assert gap <= 1e-10
EOF
step parity 600 xplayers parity --backends numpy,cupy,torch --plot "$out/parity.png"

echo "failed steps: $failed" >>"$report"
echo "report: $report (failed steps: $failed)"
exit "$failed"
