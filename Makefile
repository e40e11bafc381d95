# The two commands of the README:
#   make demo   install what is missing, build, replicate and restore a database
#   make test   install build and test dependencies, build a normal and an
#               ASan+UBSan configuration, run every suite, print
#               "N passed, N failed, N skipped"
BUILD := build
ASAN  := build-asan

.PHONY: all build asan deps-build deps-test demo test fuzz clean dist

all: build

deps-build:
	@bash scripts/deps.sh build

deps-test:
	@bash scripts/deps.sh test

build: deps-build
	@bash scripts/configure.sh $(BUILD) -Dwerror=true
	@ninja -C $(BUILD) >/dev/null

asan: deps-test
	@CC=clang bash scripts/configure.sh $(ASAN) \
	    -Db_sanitize=address,undefined -Db_lundef=false -Dwerror=true
	@ninja -C $(ASAN) >/dev/null

demo: build
	@bash scripts/demo.sh $(BUILD)/litestream.so

test: deps-test build asan
	@rc=0; \
	meson test -C $(BUILD) --num-processes 2 --print-errorlogs || rc=1; \
	meson test -C $(ASAN) --num-processes 2 --print-errorlogs \
	    --suite unit --suite vfs --suite integration || rc=1; \
	/usr/bin/python3 test/summary.py $(BUILD) $(ASAN) || rc=1; \
	exit $$rc

# Run the libFuzzer targets for a while (FUZZ_SECONDS each, default 60).
FUZZ_SECONDS ?= 60
fuzz: asan
	@for f in $(ASAN)/test/fuzz/fuzz_*; do \
	    name=$${f##*/fuzz_}; mkdir -p $(ASAN)/corpus-$$name; \
	    $$f $(ASAN)/corpus-$$name test/fuzz/corpus/$$name \
	        -max_total_time=$(FUZZ_SECONDS) || exit 1; \
	done

clean:
	rm -rf $(BUILD) $(ASAN)

# The release artifacts in dist/ (docs/install.md): the tarball for the
# sqlite3 shell, the Python wheel, the npm package, from a build without
# debug information at the optimization level the tests run at (-O2).
dist: deps-build
	@bash scripts/configure.sh build-dist -Doptimization=2 -Ddebug=false \
	    -Dtests=false -Dwerror=true
	@ninja -C build-dist >/dev/null
	@/usr/bin/python3 scripts/dist.py build-dist dist

# The model checker for SECONDS (default 1800) on a local-directory replica,
# then on S3; prints operations, kills and comparisons (test/model/model.py).
SECONDS ?= 1800
.PHONY: soak
soak: deps-test build
	@for b in file s3; do \
	    LITESTREAM_SO=$(CURDIR)/$(BUILD)/litestream.so \
	    LITESTREAM_KILLPOINTS_SO=$(CURDIR)/$(BUILD)/test/killpoints/litestream.so \
	    LITESTREAM_SRCDIR=$(CURDIR) LITESTREAM_TEST_BACKEND=$$b \
	    PYTHONPATH=$(CURDIR)/test/vfs:$(CURDIR)/test/servers \
	    /usr/bin/python3 test/model/model.py --seconds $(SECONDS) || exit 1; \
	done

# The benchmark against plain SQLite and the Litestream v0.3.13 daemon
# (docs/benchmarks.md); BENCH_QUICK=1 for a smoke run.
.PHONY: bench
bench:
	@bash test/bench/run.sh
