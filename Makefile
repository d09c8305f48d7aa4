# One command for each job; each installs what it needs into .venv first.
#   make demo   - check the bundled specs (the main job)
#   make test   - the whole test suite, lints and the generated-docs check
#   make docs   - regenerate docs/diagnostics.md, docs/ops.md, docs/report.schema.json and docs/resnet18.svg
#   make golden - regenerate tests/golden/ after a deliberate report change (review the diff)
#   make bench  - the speed benchmarks of docs/benchmarks.md (by hand, not in CI)
#   make bench-torch - compiled PyTorch modules against torchvision's (by hand, ~10 min)
#   make bench-tvm - tune and measure TVM against PyTorch on CPU (by hand, about an hour and a half)
#   make bench-gpu - the same on an NVIDIA GPU (by hand, ~30 min); without a GPU: builds the CUDA modules
#   make bench-gpu-bundle - for a GPU machine without TVM's compiler: .gpu-bundle/ to carry there and run
#                    with benchmarks/gpu_bundle.sh (TVM untuned, tuned from tuning/h200 and tuned with CUDA
#                    graphs, against PyTorch; docs/benchmarks.md)
#   make gpu-round - tuning through files: ingest .gpu-results/ into tuning/h200, write each benchmark
#                    network's next round of candidates (tuning/h200/rounds/), measured on the GPU machine
#                    by benchmarks/gpu_round.sh with .gpu-bundle/ carried (docs/round-tuning.md)
#   make gpu-runtime - only .gpu-bundle/'s runtime for gpu_round.sh (the rounds waiting are committed)
#   make mnist1d - train the notes' MNIST-1D convnet and its fully connected baseline from their specs

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
# test workers (pytest-xdist): one per core, at most four (a TVM compile of the largest specs holds ~2 GB)
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 1); [ $$n -gt 4 ] && n=4; echo $$n)

.PHONY: install demo test test-fast lint docs golden bench bench-torch bench-tvm bench-gpu bench-gpu-bundle gpu-round gpu-runtime bench-hostile fuzz mnist1d clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch and torchvision first, as a pair that works together (both lie on these machines' disk): PyPI's
	# torchvision cannot load its C++ ops (nms, roi_align) beside the CPU build torch==2.13.0, and the
	# importer and detection tests run real torchvision models; the loose ranges in pyproject.toml then
	# install nothing more.
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e '.[test]'
	# Graphviz's `dot` renders `cnndsl draw` pictures (a Debian package; .dot output needs none). Best effort:
	# without root or a package index, draw writes DOT only and its rendering tests are skipped.
	command -v dot >/dev/null || DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q graphviz >/dev/null 2>&1 \
		|| (DEBIAN_FRONTEND=noninteractive timeout 300 apt-get update -q >/dev/null 2>&1 \
			&& DEBIAN_FRONTEND=noninteractive timeout 300 apt-get install -y -q graphviz >/dev/null 2>&1) \
		|| echo "Graphviz not installed: cnndsl draw will write .dot only"
	# VS Code's TextMate engine, to test editors/vscode's grammar as the editor reads it (best effort: the
	# Python engine of the test extra tests it without node)
	command -v npm >/dev/null && (cd editors/vscode && timeout 300 npm install --no-audit --no-fund --silent >/dev/null 2>&1) \
		|| echo "npm packages not installed: the grammar is tested with the Python TextMate engine only"
	touch $(STAMP)

install: $(STAMP)

demo: install
	@for spec in specs/mnist1d.cnn specs/resnet18.cnn specs/unet.cnn; do \
		echo "\$$ cnndsl check $$spec"; $(VENV)/bin/cnndsl check $$spec || exit $$?; echo; done

test: install lint
	$(PY) -m pytest -q -p no:cacheprovider -n $(JOBS) --durations=25

# the edit loop: everything but TVM compiles, tuning and the fuzz run, on every core (pytest-xdist)
test-fast: install
	$(PY) -m pytest -q -p no:cacheprovider -n auto -m "not slow and not tvm and not fuzz"

lint: install
	$(VENV)/bin/ruff check cnndsl tests benchmarks tools examples
	$(VENV)/bin/mypy

docs: install
	$(PY) tools/gen_docs.py
	$(VENV)/bin/cnndsl draw specs/resnet18.cnn --depth 2 -o docs/resnet18.svg

golden: install
	$(PY) tools/gen_golden.py

bench: install
	$(PY) benchmarks/check_speed.py

bench-torch: install
	$(PY) -m benchmarks.torch_latency

bench-tvm: install
	$(PY) benchmarks/tvm_tuning.py

bench-gpu: install
	$(PY) benchmarks/gpu.py

gpu-round: install
	$(PY) benchmarks/gpu_rounds.py build

gpu-runtime: install
	$(PY) benchmarks/gpu_rounds.py runtime

bench-gpu-bundle: install
	$(PY) benchmarks/gpu.py --bundle .gpu-bundle --tuned-db tuning/h200

bench-hostile: install
	$(PY) benchmarks/hostile_inputs.py

# A million generated and mutated specs through `cnndsl check` (about 75 minutes on 2 cores); findings
# and summary.json in fuzz-results/ (docs/robustness.md has the last run's figures). The PyTorch
# lowering of clean networks is in the CI run; `make fuzz FUZZ_FLAGS=` adds it here too (a third slower).
FUZZ_FLAGS ?= --no-lower
fuzz: install
	$(PY) tools/fuzz.py --inputs 1000000 --seed 1 $(FUZZ_FLAGS) --out fuzz-results

mnist1d: install
	$(PY) examples/mnist1d/train.py --steps 100000 --eval-every 1000 --out examples/mnist1d/results

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
