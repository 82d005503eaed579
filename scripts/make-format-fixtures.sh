#!/usr/bin/env bash
# Rebuilds the real-tool documents in crates/exsearch-core/tests/fixtures
# from the sources in scripts/fixtures: the EPUB and PPTX by pandoc, the ODT,
# ODP (from the PPTX), XLSX and ODS (from a CSV) and RTF by LibreOffice. Not run by CI:
# the outputs are committed (75 KB), so the suite needs neither tool.
#   apt-get install pandoc libreoffice-writer-nogui libreoffice-impress-nogui \
#       libreoffice-calc-nogui
set -euo pipefail
cd "$(dirname "$0")/.."
out=crates/exsearch-core/tests/fixtures
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
pandoc scripts/fixtures/voyage.md -o "$out/voyage.epub"
pandoc scripts/fixtures/ohm.md -o "$tmp/ohm.odt"
soffice --headless --convert-to odt:writer8 "$tmp/ohm.odt" --outdir "$out" > /dev/null
pandoc scripts/fixtures/quarterly.md -o "$out/quarterly.pptx"
soffice --headless --convert-to odp "$out/quarterly.pptx" --outdir "$out" > /dev/null
soffice --headless --convert-to xlsx scripts/fixtures/cities.csv --outdir "$out" > /dev/null
soffice --headless --convert-to ods scripts/fixtures/cities.csv --outdir "$out" > /dev/null
pandoc scripts/fixtures/memo.md -o "$tmp/memo.odt"
soffice --headless --convert-to rtf "$tmp/memo.odt" --outdir "$out" > /dev/null
ls -la "$out"
