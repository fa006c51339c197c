# The two commands README.md opens with:  `make run`  and  `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed

.PHONY: setup browser node-tools nerfstudio-venv run test bench clean
setup: $(STAMP)

$(STAMP): pyproject.toml requirements/constraints.txt
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip==25.3
	# torch first and exact: on a CPU machine this takes the local CPU wheel, not a CUDA build.
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q -c requirements/constraints.txt -e '.[test]'
	touch $(STAMP)

# The main job: offline scene generation (procedural world prior, no downloaded weights).
run: setup
	$(VENV)/bin/scenedreamer generate "a forest lake at sunset" --preset offline --out runs/demo --overwrite

# The viewer tests drive Debian's chromium with playwright (no browser download): install it
# when it is missing (root, as on the project's machines and CI).
browser:
	@command -v chromium >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q chromium)

# Independent readers the export tests check our splat files with (PlayCanvas splat-transform
# reads SPZ, the Khronos glTF validator checks gltf-splat): exact versions from tests/node's
# lock file, into .cache/node/ (git-ignored). Debian's nodejs/npm when node is missing.
NODE_TOOLS := .cache/node
node-tools: $(NODE_TOOLS)/.installed

$(NODE_TOOLS)/.installed: tests/node/package.json tests/node/package-lock.json
	@command -v npm >/dev/null 2>&1 || (apt-get update -q && apt-get install -y -q nodejs npm)
	mkdir -p $(NODE_TOOLS)
	cp tests/node/package.json tests/node/package-lock.json $(NODE_TOOLS)/
	cd $(NODE_TOOLS) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

# nerfstudio's own dataparser in its own venv (numpy < 2, open3d), which the nerfstudio export
# tests run as a subprocess: requirements/nerfstudio-venv.txt says why each pin is there.
NS_VENV := .cache/nerfstudio-venv
NS_STAMP := $(NS_VENV)/.installed
nerfstudio-venv: $(NS_STAMP)

$(NS_STAMP): requirements/nerfstudio-venv.txt
	python3 -m venv $(NS_VENV)
	$(NS_VENV)/bin/python -m pip install -q --no-deps -r requirements/nerfstudio-venv.txt
	touch $(NS_STAMP)

# pyflakes first (unused imports, undefined names), then two pytest-xdist workers (one per core),
# one torch thread each (tests/conftest.py).
test: setup browser node-tools nerfstudio-venv
	$(PY) -m pyflakes src tests benchmarks
	OMP_NUM_THREADS=1 $(PY) -m pytest -q -n 2 --durations=15

bench: setup
	$(PY) -m benchmarks.run_all

clean:
	rm -rf $(VENV) $(NS_VENV) runs .pytest_cache
