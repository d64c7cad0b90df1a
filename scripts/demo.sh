#!/usr/bin/env bash
# Render the default service, install it, train it, serve it, and show one real prediction.
# Usage: scripts/demo.sh [destination]   (PORT=5000 by default; Ctrl-C stops the service)
set -euo pipefail

template="$(cd "$(dirname "$0")/.." && pwd)"
destination="${1:-$template/build/demo-service}"
port="${PORT:-5000}"

echo "==> Rendering the default service into $destination"
rm -rf "$destination"
# HEAD, with any uncommitted changes: the template as checked out, not its newest tag.
copier copy --trust --defaults --quiet --vcs-ref HEAD "$template" "$destination"
cd "$destination"

# The service and its training stack alone: the demo runs no tests, so their tools (make
# install's dev extra) wait until the project is yours. pip's own lines show the progress.
echo "==> Creating its virtual environment, .venv, and installing the service and its training stack (make install-runtime)"
make install-runtime

echo "==> Training the model (make train)"
make train

# The production stack (supervisord, nginx, gunicorn) where nginx is installed; otherwise
# Flask's development server, which serves the same app.
if command -v nginx >/dev/null || [ -x /usr/sbin/nginx ]; then
  target=serve
  echo "==> Serving on http://127.0.0.1:$port through nginx -> gunicorn, under supervisord (make serve)"
else
  target=run
  echo "==> nginx is not installed (apt-get install nginx for the full stack, make serve);"
  echo "    serving on http://127.0.0.1:$port with Flask's development server (make run)"
fi
# Its own process group (set -m), so that stopping it stops every process it started.
set -m
make "$target" PORT="$port" >service.log 2>&1 &
service=$!
set +m
trap 'kill -TERM -- "-$service" 2>/dev/null || true; wait "$service" 2>/dev/null' EXIT INT TERM

for _ in $(seq 100); do
  curl --silent --fail "http://127.0.0.1:$port/readyz" >/dev/null && break
  kill -0 "$service" 2>/dev/null || { cat service.log; exit 1; }
  sleep 0.2
done

# The example row training recorded: a real row of the held-out data.
example=$(.venv/bin/python -c 'import json; print(json.dumps({"rows": [json.load(open("models/metadata.json"))["example"]]}))')
echo "==> POST /predict $example"
curl --silent --show-error --fail -H 'Content-Type: application/json' -d "$example" \
  "http://127.0.0.1:$port/predict"
echo
echo "==> Swagger UI: http://127.0.0.1:$port/docs/   (OpenAPI document: /openapi.json)"
echo "==> The service runs until you press Ctrl-C. Its log: $destination/service.log"
wait "$service"
