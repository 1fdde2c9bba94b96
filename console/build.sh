#!/bin/sh
# Reproduce the console's vendored front-end libraries from the lock file (package-lock.json).
#
# Usage: sh console/build.sh     (needs node >= 18 and npm; users and CI never run it: its output,
#                                 proximity/service/console_assets/vendor/, is committed)
# What it does: `npm ci` installs the exact versions of the lock file, then the distributed files
# of Leaflet, leaflet-geoman and Chart.js (and their licences) are copied as they are, except for
# the `sourceMappingURL` comment (the maps are not shipped). No bundler: the console's own code is
# plain ES modules under proximity/service/console_assets/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out="$here/../proximity/service/console_assets/vendor"
cd "$here"
npm ci --no-audit --no-fund --ignore-scripts
rm -rf "$out"
mkdir -p "$out/leaflet/images" "$out/leaflet-geoman" "$out/chart.js"
strip() { sed '/^\/\/# sourceMappingURL=/d; s#/\*\# sourceMappingURL=[^*]*\*/##' "$1" > "$2"; }
m=node_modules
strip $m/leaflet/dist/leaflet.js "$out/leaflet/leaflet.js"
strip $m/leaflet/dist/leaflet.css "$out/leaflet/leaflet.css"
cp $m/leaflet/dist/images/*.png "$out/leaflet/images/"
cp $m/leaflet/LICENSE "$out/leaflet/LICENSE"
strip $m/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.min.js "$out/leaflet-geoman/leaflet-geoman.min.js"
strip $m/@geoman-io/leaflet-geoman-free/dist/leaflet-geoman.css "$out/leaflet-geoman/leaflet-geoman.css"
cp $m/@geoman-io/leaflet-geoman-free/LICENSE "$out/leaflet-geoman/LICENSE"
strip $m/chart.js/dist/chart.umd.min.js "$out/chart.js/chart.umd.min.js"
cp $m/chart.js/LICENSE.md "$out/chart.js/LICENSE.md"
# the versions, for the record (and a check that the copy matches the lock file)
node -e 'const l=require("./package-lock.json").packages;for(const p of ["leaflet","@geoman-io/leaflet-geoman-free","chart.js"])console.log(p+" "+l["node_modules/"+p].version)' > "$out/VERSIONS"
echo "console: vendored into $out"; cat "$out/VERSIONS"
