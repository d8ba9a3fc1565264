# Thin front end over scripts/: each target says what it does as it runs.
.PHONY: run test build bench format clean

run:            ## install deps, build, run programs on ZVFS (default store) and the ZVFS vs ext4 benchmark
	scripts/run.sh

test:           ## install deps, build (release + ASan/UBSan), run every test
	scripts/test.sh

build:
	scripts/build.sh release

bench:          ## the full device benchmark (3 rounds x 10 s per case)
	scripts/build.sh release && bench/bdev_vs_fio.sh

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build build-asan
