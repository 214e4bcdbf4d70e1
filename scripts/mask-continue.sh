#!/usr/bin/env bash
# Add wall-clock hours to the committed mask training run, resuming from its committed checkpoint:
#   bash scripts/mask-continue.sh --minutes 120 [--run models/training/mask-gen2] [--commit-every 25]
#                                 [--teacher runs/teacher-cache [--teacher-n 120] | --no-teacher]
# The run's fixed settings are RUN/train.args (one argument per line); RUN/ckpt.pt is resumed when present,
# otherwise the run starts from the --init-from named there. Training runs in chunks of at most
# --commit-every minutes; after each chunk the checkpoint (ckpt.pt, saved on the chunk's budget), log.jsonl
# and summary.json are committed (0: one chunk, no commit). Every chunk stops STOP_MARGIN_S seconds before
# its share of the budget (the last step, the save and the closing validation fit in it), so the whole call
# ends within --minutes. SIGTERM/SIGINT to this script (or to the training process) ends the current step, saves
# the checkpoint, commits it (with --commit-every) and stops.
# Nice 19, one torch/BLAS thread: it takes only the CPU the foreground work leaves.
# The teacher cache (scripts/mask_teacher_cache.py) lives under runs/ and does not survive a session: the
# teacher term is used when the folder holds shards, and left out otherwise. --teacher-n N first makes the
# missing shards of the first N mixtures (the same fixed mixtures in every session; one process, nice 19,
# in .venv-bench; at most half the budget), then trains: never both at once.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=60
RUN=models/training/mask-gen2
COMMIT_EVERY=0
TEACHER=runs/teacher-cache
TEACHER_N=0
STOP_MARGIN_S=${STOP_MARGIN_S:-150}
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --run) RUN=$2; shift 2 ;;
        --commit-every) COMMIT_EVERY=$2; shift 2 ;;
        --teacher) TEACHER=$2; shift 2 ;;
        --no-teacher) TEACHER=; shift ;;
        --teacher-n) TEACHER_N=$2; shift 2 ;;
        *) echo "mask-continue: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -f "$RUN/train.args" ] || { echo "mask-continue: $RUN/train.args missing" >&2; exit 2; }
mapfile -t ARGS < <(grep -v '^\s*\(#\|$\)' "$RUN/train.args")
START=$(date +%s)
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
STOP=0
PID=
trap 'STOP=1; [ -n "$PID" ] && kill -TERM "$PID" 2>/dev/null' TERM INT
run_bg() {  # run "$@" in the background and wait for it, so that the trap runs (and forwards) while it works
    "$@" &
    PID=$!
    local rc=0
    while :; do
        wait "$PID" && rc=0 || rc=$?
        kill -0 "$PID" 2>/dev/null || break  # a trapped signal interrupts wait while the process still saves
    done
    PID=
    return "$rc"
}
if [ -n "$TEACHER" ] && [ "$TEACHER_N" -gt 0 ]; then
    [ -x .venv-bench/bin/python ] || { echo "mask-continue: --teacher-n needs .venv-bench (scripts/bench-venv.sh)" >&2; exit 2; }
    run_bg nice -n 19 .venv-bench/bin/python scripts/mask_teacher_cache.py --out "$TEACHER" \
        --n "$TEACHER_N" --jobs 1 --minutes "$(( ${MINUTES%.*} / 2 ))" || [ "$STOP" -eq 1 ] || exit 1
    [ "$STOP" -eq 0 ] || exit 0
fi
EXTRA=()
if [ -n "$TEACHER" ] && compgen -G "$TEACHER/shard_*.npz" > /dev/null; then
    EXTRA=(--teacher "$TEACHER")
    echo "mask-continue: teacher cache $TEACHER ($(ls "$TEACHER"/shard_*.npz | wc -l) shards)"
else
    echo "mask-continue: no teacher cache, the teach term is off"
fi
END=$(( START + ${MINUTES%.*} * 60 ))
while :; do
    LEFT=$(( END - $(date +%s) - STOP_MARGIN_S ))
    [ "$LEFT" -ge 60 ] || break
    CHUNK=$LEFT
    if [ "$COMMIT_EVERY" -gt 0 ] && [ $(( COMMIT_EVERY * 60 )) -lt "$CHUNK" ]; then CHUNK=$(( COMMIT_EVERY * 60 )); fi
    run_bg nice -n 19 .venv/bin/python -m resculpt.models.mask.train "${ARGS[@]}" "${EXTRA[@]}" --out "$RUN" \
        --until "$(( $(date +%s) + CHUNK ))"
    if [ "$COMMIT_EVERY" -gt 0 ]; then
        STEP=$(.venv/bin/python -c "import json,sys; print(json.load(open(sys.argv[1]))['steps'])" "$RUN/summary.json")
        VAL=$(.venv/bin/python -c "import json,sys; print(round(json.load(open(sys.argv[1]))['val']['si_sdr_improvement'], 2))" "$RUN/summary.json")
        git add -- "$RUN"
        for _ in 1 2 3 4 5; do  # another git command in this worktree may hold the index lock for a moment
            git commit -q -m "$(basename "$RUN"): training checkpoint at step $STEP (val SI-SDR improvement $VAL dB)" -- "$RUN" && break
            sleep 5
        done
    fi
    [ "$STOP" -eq 0 ] || break
    # the schedule's last step reached: nothing left to add
    .venv/bin/python -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s['steps'] >= s['schedule_steps'])" "$RUN/summary.json" || break
done
