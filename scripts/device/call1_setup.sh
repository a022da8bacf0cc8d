# Device call 1 (carry .gpudata): the wheels and photographs onto the machine, where they stay for the
# next calls while it is warm; then the GPU tests and a TIFF-to-TIFF restore. Writes logs to $OUT.
set -x
T0=$(date +%s)
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .gpudata/whl/*.whl > $OUT/pip.log 2>&1 || { cat $OUT/pip.log; exit 1; }
export PYTHONPATH=/tmp/site:$PWD/src GAMA_IR_DATA_CACHE=/root/data PYTHONUNBUFFERED=1
mkdir -p /root/data && cp -r .gpudata/photos /root/data/
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -c "import sys, torch, numpy, PIL, zarr, dask; print(sys.version, torch.__version__, torch.version.cuda, numpy.__version__, PIL.__version__, zarr.__version__, dask.__version__)"
python3 scripts/device/check_data.py || exit 1
set -o pipefail
timeout 200 python3 -m pytest -q -p no:cacheprovider tests/integration/test_gpu.py tests/integration/test_resident.py tests/unit/test_device_sampler.py 2>&1 | tee $OUT/pytest.log | tail -30 \
  || echo "GPU TESTS FAILED (see pytest.log); the data stays set up for call 2"
timeout 120 python3 benchmarks/gpu.py --models w16 --planes 8 --precision bf16 --sections throughput 2>&1 | tee $OUT/gpu_tiff.log
echo "call 1 took $(( $(date +%s) - T0 )) s"
