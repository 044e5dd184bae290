#!/usr/bin/env bash
# Render Tabula's SVG icons to PNG: png/<name>-<size>.png
# Needs rsvg-convert (Debian: librsvg2-bin); falls back to ImageMagick.
set -euo pipefail

cd "$(dirname "$0")"
mkdir -p png

TRAY_ICONS=(tray-safe tray-syncing tray-pending tray-queued tray-local-only tray-paused tray-decision tray-update tray-error tray-stale)
TRAY_SIZES=(16 22 24 32 48)
APP_SIZES=(64 128 256 512)

render() { # render SRC.svg SIZE OUT.png
  local src=$1 size=$2 out=$3
  if command -v rsvg-convert >/dev/null 2>&1; then
    rsvg-convert --width "$size" --height "$size" --keep-aspect-ratio \
      --format png --output "$out" "$src"
  elif command -v magick >/dev/null 2>&1; then
    magick -background none -density 1200 "$src" -resize "${size}x${size}" "$out"
  elif command -v convert >/dev/null 2>&1; then
    convert -background none -density 1200 "$src" -resize "${size}x${size}" "$out"
  else
    echo "render.sh: need rsvg-convert (apt-get install librsvg2-bin) or ImageMagick" >&2
    exit 1
  fi
}

for name in "${TRAY_ICONS[@]}"; do
  for size in "${TRAY_SIZES[@]}"; do
    render "$name.svg" "$size" "png/$name-$size.png"
  done
done

for size in "${APP_SIZES[@]}"; do
  render tabula.svg "$size" "png/tabula-$size.png"
done

echo "rendered $(find png -name '*.png' | wc -l) PNGs into $(pwd)/png"
