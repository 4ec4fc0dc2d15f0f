#!/usr/bin/env bash
# The oldest Paddle that setup.cfg admits, in a virtual environment of its own: a short run with learning on
# each engine, a resume on the other engine, evaluation and export. The fast engine may fall back to the plain
# one on a Paddle that lacks what it needs (the run says so); everything else must work.
set -euo pipefail
cd "$(dirname "$0")/.."
paddle_version=${PADDLE_VERSION:-$(sed -n "s/^ *paddlepaddle>=\([0-9.]*\).*/\1/p" setup.cfg)}
venv=${OLDEST_PADDLE_VENV:-.venv-oldest}
python3 -m venv "$venv"
"$venv/bin/pip" install -q "paddlepaddle==$paddle_version" $(grep -v '^paddlepaddle' requirements.txt | grep -v '^#') -e .
py="$venv/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
short=(--episodes 3 --max-episode-steps 50 --learning-starts 64 --batch-size 16 --eval-interval 2 --eval-episodes 2
       --log-interval 1 --logdir "$work/logs" --model-dir "$work/model")
last_json() { tail -n 1 | "$py" -c "import json, sys; print(json.loads(sys.stdin.read())['$1'])"; }
for engine in fast plain; do
  other=$([ "$engine" = fast ] && echo plain || echo fast)
  used=$("$py" -m paddle_ddpg.train "${short[@]}" --engine "$engine" --run-name "$engine" | last_json engine)
  resumed=$("$py" -m paddle_ddpg.train --resume "$work/model/$engine" --episodes 4 --engine "$other" | last_json episodes)
  [ "$resumed" = 4 ] || { echo "resume on the $other engine ended at episode $resumed" >&2; exit 1; }
  from_run=$("$py" -m paddle_ddpg.evaluate --checkpoint "$work/model/$engine" --episodes 2 | last_json returns)
  "$py" -m paddle_ddpg.export --checkpoint "$work/model/$engine" --output "$work/export/$engine" > /dev/null
  from_export=$("$py" -m paddle_ddpg.evaluate --checkpoint "$work/export/$engine" --episodes 2 | last_json returns)
  [ "$from_run" = "$from_export" ] || { echo "export evaluates to $from_export, the run to $from_run" >&2; exit 1; }
  echo "paddlepaddle $paddle_version, --engine $engine: trained on the $used engine, resumed on $other, evaluated, exported"
done
