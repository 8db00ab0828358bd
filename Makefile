# The two commands of the README. Each one sets the environment up first (a no-op
# taking seconds when .venv is current; see tools/setup_env.sh).
PY := .venv/bin/python
PYTEST_ARGS ?=

.PHONY: setup demo test data
setup:
	@bash tools/setup_env.sh

demo: setup
	$(PY) tools/demo.py

test: setup
	$(PY) -m pytest -q -ra --durations=15 tests $(PYTEST_ARGS)

data: setup
	$(PY) tools/generate_shapes.py --out data/shapes

# The prepared GPU check (tools/gpu_check.sh): `gpu-check-prepare` fills gpu_carry/ (pip
# only, no .venv), `gpu-check` runs on the GPU machine, `gpu-check-rehearsal` builds a
# replica of the GPU machine's Python and runs the check from gpu_carry/ in it with no
# package index, `gpu-check-cpu` runs the steps in .venv.
.PHONY: gpu-check-prepare gpu-check gpu-check-rehearsal gpu-check-cpu
gpu-check-prepare:
	bash tools/gpu_check.sh prepare

gpu-check:
	bash tools/gpu_check.sh run

gpu-check-rehearsal: gpu-check-prepare
	bash tools/gpu_check.sh rehearse $(GPU_CHECK_ARGS)

gpu-check-cpu: setup
	bash tools/gpu_check.sh run --device cpu
