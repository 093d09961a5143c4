#!/usr/bin/env bash
# Assembles bench/offline/kit/: everything bench/run.py needs on a machine that has
# Python 3 but no network, no Go and no wrk, such as a lent
# many-core benchmark machine. Run here, then carry bench/offline/kit and bin/ there
# and run bench/offline/run.sh.
#
#   bench/offline/kit.sh [PYTHON_VERSION]     # default 3.12: the target's python3
#
# Contents: wheels of the Python servers and the worker's dependencies at the versions
# bench/.venv and .venv hold (make bench makes them), for that Python on manylinux
# x86-64, wrk with the shared libraries it links
# (LuaJIT, OpenSSL), bench/gohttp built statically, and a fresh bin/ (make build).
set -euo pipefail
cd "$(dirname "$0")/../.."
pyver=${1:-3.12}
kit=bench/offline/kit
rm -rf "$kit" && mkdir -p "$kit/whl" "$kit/lib"
ver() {
	local v
	for py in bench/.venv/bin/python .venv/bin/python; do
		v=$("$py" -c "import importlib.metadata as m; print(m.version('$1'))" 2>/dev/null) && { echo "$v"; return; }
	done
	return 1
}
# The servers, the worker's msgpack, msgspec and uvloop, and their pure-Python dependencies.
for pkg in granian uvicorn httptools starlette msgpack msgspec uvloop anyio h11 click idna sniffio typing_extensions; do
	v=$(ver "$pkg") || { echo "kit: $pkg is in neither venv; skipped"; continue; }
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version "$pyver" \
		--implementation cp --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
		--platform manylinux_2_28_x86_64 --platform manylinux_2_5_x86_64 --platform manylinux1_x86_64 \
		-d "$kit/whl" "$pkg==$v"
done
cp "$(command -v wrk)" "$kit/wrk"
ldd "$kit/wrk" | awk '/libluajit|libssl|libcrypto/ {print $3}' | xargs -r cp -t "$kit/lib"
(cd bench/gohttp && CGO_ENABLED=0 GOFLAGS= go build -o ../offline/kit/gohttp .)
make build >/dev/null
du -sh "$kit" bin
