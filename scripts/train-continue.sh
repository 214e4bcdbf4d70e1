#!/usr/bin/env bash
# Add wall-clock time to a committed training run (models/training/RUN), resuming from its committed checkpoint:
#   bash scripts/train-continue.sh MODEL --minutes 120 [--run DIR] [--commit-every 25]
#   MODEL = mask      (default run models/training/mask-gen2)
#           [--teacher DIR (default models/training/teacher-gains) [--teacher-n N] | --no-teacher]
#   MODEL = resculpt  (default run models/training/resculpt-gen1)
# The run's fixed settings are RUN/train.args (one `resculpt train MODEL` argument per line); RUN/ckpt.pt is
# resumed when present (mask: otherwise the run starts from the --init-from named there). Training runs in
# chunks of at most --commit-every minutes; after each chunk the checkpoint (ckpt.pt, saved on the chunk's
# budget), log.jsonl and summary.json are committed, and only they: `git commit -- RUN` takes the run folder
# and nothing else staged in the worktree (0: one chunk, no commit). Every chunk stops STOP_MARGIN_S seconds
# before its share of the budget (the last step, the save and the closing validation fit in it), so the whole
# call ends within --minutes. SIGTERM/SIGINT to this script (or to the training process) ends the current
# step, saves the checkpoint, commits it (with --commit-every) and stops.
# Nice 19, one torch/BLAS thread: it takes only the CPU the foreground work leaves.
# Caches under runs/ do not survive a session; each model completes what it needs before training, never both
# at once (one process, nice 19):
#   mask      the teacher term is used when the teacher folder holds shards, and left out otherwise; the
#             default folder is the committed gains cache (scripts/mask_teacher_cache.py, grown across
#             sessions); --teacher-n N first makes the missing shards of the first N mixtures (in .venv-bench;
#             at most half the budget; the shards it makes are left for the cache's own --commit-every to commit);
#   resculpt  the pair cache named by train.args' --pairs is completed to its --max-pairs pairs
#             (scripts/resculpt_cache.py: resumable, the same pairs in every session; at most half the budget).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-}
case "$MODEL" in
    mask) RUN=models/training/mask-gen2 ;;
    resculpt) RUN=models/training/resculpt-gen1 ;;
    *) echo "train-continue: first argument must be the model: mask or resculpt" >&2; exit 2 ;;
esac
shift
MINUTES=60
COMMIT_EVERY=0
TEACHER=models/training/teacher-gains
TEACHER_N=0
STOP_MARGIN_S=${STOP_MARGIN_S:-150}
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) MINUTES=$2; shift 2 ;;
        --run) RUN=$2; shift 2 ;;
        --commit-every) COMMIT_EVERY=$2; shift 2 ;;
        --teacher) [ "$MODEL" = mask ] || { echo "train-continue: --teacher is a mask option" >&2; exit 2; }
                   TEACHER=$2; shift 2 ;;
        --no-teacher) TEACHER=; shift ;;
        --teacher-n) [ "$MODEL" = mask ] || { echo "train-continue: --teacher-n is a mask option" >&2; exit 2; }
                     TEACHER_N=$2; shift 2 ;;
        *) echo "train-continue: unknown option $1" >&2; exit 2 ;;
    esac
done
[ -f "$RUN/train.args" ] || { echo "train-continue: $RUN/train.args missing" >&2; exit 2; }
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
arg_value() {  # the value after option $1 in train.args, or empty
    local i
    for ((i = 0; i < ${#ARGS[@]} - 1; i++)); do
        [ "${ARGS[$i]}" = "$1" ] && { echo "${ARGS[$((i + 1))]}"; return; }
    done
    echo ""
}
EXTRA=()
HALF=$(( ${MINUTES%.*} / 2 ))
if [ "$MODEL" = mask ]; then
    if [ -n "$TEACHER" ] && [ "$TEACHER_N" -gt 0 ]; then
        [ -x .venv-bench/bin/python ] || { echo "train-continue: --teacher-n needs .venv-bench (scripts/bench-venv.sh)" >&2; exit 2; }
        run_bg nice -n 19 .venv-bench/bin/python scripts/mask_teacher_cache.py --out "$TEACHER" \
            --n "$TEACHER_N" --jobs 1 --minutes "$HALF" || [ "$STOP" -eq 1 ] || exit 1
        [ "$STOP" -eq 0 ] || exit 0
    fi
    if [ -n "$TEACHER" ] && compgen -G "$TEACHER/shard_*.npz" > /dev/null; then
        EXTRA=(--teacher "$TEACHER")
        echo "train-continue: teacher cache $TEACHER ($(ls "$TEACHER"/shard_*.npz | wc -l) shards)"
    else
        echo "train-continue: no teacher cache, the teach term is off"
    fi
    METRIC="s['val']['si_sdr_improvement']"
    METRIC_NAME="val SI-SDR improvement (dB)"
else
    PAIRS=$(arg_value --pairs)
    NPAIRS=$(arg_value --max-pairs)
    if [ -n "$PAIRS" ] && [ -n "$NPAIRS" ]; then
        echo "train-continue: completing the pair cache $PAIRS to $NPAIRS pairs"
        run_bg timeout "$(( HALF * 60 ))" nice -n 19 .venv/bin/python scripts/resculpt_cache.py --out "$PAIRS" \
            --n "$NPAIRS" || [ "$STOP" -eq 1 ] || compgen -G "$PAIRS/shard_*.npz" > /dev/null || exit 1
        [ "$STOP" -eq 0 ] || exit 0
    fi
    METRIC="s['val']['profile_ratio']"
    METRIC_NAME="val profile distance out/in"
fi
END=$(( START + ${MINUTES%.*} * 60 ))
while :; do
    LEFT=$(( END - $(date +%s) - STOP_MARGIN_S ))
    [ "$LEFT" -ge 60 ] || break
    CHUNK=$LEFT
    if [ "$COMMIT_EVERY" -gt 0 ] && [ $(( COMMIT_EVERY * 60 )) -lt "$CHUNK" ]; then CHUNK=$(( COMMIT_EVERY * 60 )); fi
    run_bg nice -n 19 .venv/bin/python -m "resculpt.models.$MODEL.train" "${ARGS[@]}" "${EXTRA[@]}" --out "$RUN" \
        --until "$(( $(date +%s) + CHUNK ))"
    if [ "$COMMIT_EVERY" -gt 0 ]; then
        DESC=$(.venv/bin/python -c "import json,sys; s=json.load(open(sys.argv[1])); print(f\"step {s['steps']} ($METRIC_NAME {round($METRIC, 3)})\")" "$RUN/summary.json")
        git add -- "$RUN"
        for _ in 1 2 3 4 5; do  # another git command in this worktree may hold the index lock for a moment
            git commit -q -m "$(basename "$RUN"): training checkpoint at $DESC" -- "$RUN" && break
            sleep 5
        done
    fi
    [ "$STOP" -eq 0 ] || break
    # the schedule's last step reached: nothing left to add
    .venv/bin/python -c "import json,sys; s=json.load(open(sys.argv[1])); sys.exit(s['steps'] >= s['schedule_steps'])" "$RUN/summary.json" || break
done
