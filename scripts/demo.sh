#!/usr/bin/env bash
# Render the default service, install it, train it, serve it, and show one real prediction.
# Usage: scripts/demo.sh [destination]   (PORT=5000 by default; Ctrl-C stops the service)
set -euo pipefail

template="$(cd "$(dirname "$0")/.." && pwd)"
destination="${1:-$template/build/demo-service}"
port="${PORT:-5000}"

echo "==> Rendering the default service into $destination"
rm -rf "$destination"
copier copy --trust --defaults --quiet "$template" "$destination"
cd "$destination"

echo "==> Installing it into its own virtual environment (make install)"
make install >/dev/null

echo "==> Training the model (make train)"
make train

echo "==> Serving on http://127.0.0.1:$port (make run)"
make run PORT="$port" >service.log 2>&1 &
service=$!
trap 'kill $service 2>/dev/null || true' EXIT INT TERM

for _ in $(seq 50); do
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
