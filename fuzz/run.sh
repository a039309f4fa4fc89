#!/usr/bin/env bash
# Runs cairn's fuzz targets one after another, SECONDS each (default 1800), in LANES parallel
# lanes (default 1), with small seeds of our own; crashes land in artifacts/TARGET/.
# Needs a nightly toolchain and cargo-fuzz: `cargo install cargo-fuzz`.
#   bash fuzz/run.sh [TARGET...]
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_EACH=${SECONDS_EACH:-1800}
LANES=${LANES:-1}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(read_pdf read_html read_markdown read_text pack gguf chunk batch_line prompt_cache)

seed() {
  local t=$1 d=corpus/$1
  mkdir -p "$d"
  case $t in
    read_pdf)
      # One page of text, alone and with an outline of two entries (one found by a named
      # destination), with a true cross-reference table.
      python3 - "$d" <<'PY'
import sys
def pdf(objects):
    out, offsets = b"%PDF-1.4\n", []
    for i, o in enumerate(objects, 1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (i, o)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % o for o in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return out
text = b"BT /F1 12 Tf 72 712 Td (1 Pumps) Tj 0 -14 Td (1.1 Seals) Tj 0 -14 Td (Prime) Tj ET"
common = [
    b"<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
    b"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 5 0 R >> >> >>",
    b"<< /Length %d >>\nstream\n%s\nendstream" % (len(text), text),
    b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
]
open(sys.argv[1] + "/seed.pdf", "wb").write(pdf([b"<< /Type /Catalog /Pages 2 0 R >>"] + common))
open(sys.argv[1] + "/outline.pdf", "wb").write(pdf(
    [b"<< /Type /Catalog /Pages 2 0 R /Outlines 6 0 R /Names << /Dests 9 0 R >> >>"] + common + [
        b"<< /Type /Outlines /First 7 0 R /Last 7 0 R /Count 2 >>",
        b"<< /Title (1 Pumps) /Parent 6 0 R /First 8 0 R /Last 8 0 R /Dest [3 0 R /Fit] >>",
        b"<< /Title <FEFF0031002E00310020005300650061006C0073> /Parent 7 0 R /A << /S /GoTo /D (seals) >> >>",
        b"<< /Names [(seals) [3 0 R /XYZ 0 700 0]] >>",
    ]))
PY
      ;;
    read_html)
      printf '<!doctype html><html><head><title>T</title></head><body><h1>Pumps</h1><p>Prime with <b>3 l</b>.</p><ul><li>a<li>b</ul><pre>code\n</pre><table><tr><td>x</td></tr></table></body></html>' > "$d/seed.html" ;;
    read_markdown|chunk)
      printf '\x08\x02\x04# Pumps\n\nPrime the pump.\n\n## Seals\n\n- every 400 hours\n- check\n\n```rust\nfn main() {}\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |\n' > "$d/seed.md" ;;
    read_text)
      printf 'plain text\r\nline two\n' > "$d/utf8"; printf '\xff\xfeh\x00i\x00' > "$d/utf16"; printf 'caf\xe9\n' > "$d/latin1" ;;
    pack)
      # A real pack of one small page, when the project's binary and models are there.
      if [ -x ../target/debug/cairn ] && [ ! -e "$d/seed.cairnpack" ]; then
        local tmp; tmp=$(mktemp -d)
        mkdir -p "$tmp/docs" && printf '# Pumps\n\nPrime the pump with glycol.\n' > "$tmp/docs/p.md"
        ../target/debug/cairn --kb "$tmp/kb" add "$tmp/docs" -q >/dev/null 2>&1 &&
          ../target/debug/cairn --kb "$tmp/kb" pack build --from-kb "$tmp/kb" -o "$d/seed.cairnpack" --name seed >/dev/null 2>&1 || true
        rm -rf "$tmp"
      fi ;;
    prompt_cache)
      printf 'CAIRNKV1\x02\0\0\0\0\0\0\0\x01\0\0\0\x02\0\0\0\x01\0\0\0\0\0\0\0\0\0\x80\x3f' > "$d/seed" ;;
    batch_line)
      printf '{"id": 1, "question": "Why?", "k": 3, "mode": "bm25", "temperature": 0.5}' > "$d/obj"; printf 'What is a crate?' > "$d/plain" ;;
    *) ;;
  esac
}

run() {
  local t=$1
  seed "$t"
  mkdir -p "artifacts/$t" logs
  local max_len=65536
  [ "$t" = pack ] && max_len=262144 # a real pack of one page is 108 KiB
  cargo +nightly fuzz run -O "$t" "corpus/$t" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 \
    -timeout=20 -max_len="$max_len" -artifact_prefix="artifacts/$t/" > "logs/$t.log" 2>&1 || true
  echo "$t: $(grep -E '^(Done|==[0-9]+==|SUMMARY)' "logs/$t.log" | tail -1)"
}

# LANES workers take the targets in turn.
export -f seed run
export SECONDS_EACH
printf '%s\n' "${targets[@]}" | xargs -P "$LANES" -I{} bash -c 'run {}'
