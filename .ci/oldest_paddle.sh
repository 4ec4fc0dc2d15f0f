#!/usr/bin/env bash
# The oldest release of every package setup.cfg's install_requires admits (paddlepaddle 3.0.0, numpy 1.24, ...),
# in a virtual environment of its own: a short run with learning on each engine, a resume on the other engine,
# evaluation and export. The fast engine may fall back to the plain one on a Paddle that lacks what it needs (the
# run says so); everything else must work. PADDLE_VERSION tries another Paddle with the other floors.
set -euo pipefail
cd "$(dirname "$0")/.."
floors=$(awk '/^install_requires/ {on = 1; next} on && !/^[ \t]/ {on = 0} on && NF {print $1}' setup.cfg |
         sed -n 's/^\([A-Za-z0-9_.-]*\)>=\([0-9.]*\).*/\1==\2/p')
if [ -n "${PADDLE_VERSION:-}" ]; then
  floors=$(echo "$floors" | sed "s/^paddlepaddle==.*/paddlepaddle==$PADDLE_VERSION/")
fi
venv=${OLDEST_PADDLE_VENV:-.venv-oldest}
python3 -m venv "$venv"
"$venv/bin/pip" install -q $floors -e .
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
  echo "$(echo $floors), --engine $engine: trained on the $used engine, resumed on $other, evaluated, exported"
done
