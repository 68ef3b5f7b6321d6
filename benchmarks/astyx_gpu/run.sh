#!/usr/bin/env bash
# One-shot GPU run of Astyx jobs side by side on one GPU, each for as many epochs as BUDGET
# seconds allow (a timed probe of PROBE_STEPS steps per job, all at once, sets the epochs), then
# predicted and scored on its val split. For a GPU machine that gets only a small tree: the Astyx
# files sckd reads travel as a bundle made by pack.py (about 48 MB; LiDAR exact, radar in
# float32) and unpack.py rebuilds them there.
#   python benchmarks/astyx_gpu/pack.py ASTYX_ROOT BUNDLE                # here
#   BUNDLE=BUNDLE OUT=RESULTS JOBS="..." bash benchmarks/astyx_gpu/run.sh  # there, repository root
# JOBS: space-separated KEY:CONFIG[:SET;SET...] (CONFIG under experiments/astyx; SETs are KEY=VALUE
# overrides for train, and the dataset.* ones for predict / eval too; no spaces). COMMON: SETs of every job
# (default: the published split). TEACHER: a float16 teacher from half.py, named @TEACHER in SETs
# (students: distill.teacher.checkpoint=@TEACHER;distill.teacher.config=null). PSEUDO: job keys
# whose train-split pseudo-label precision / recall is measured (sckd pseudo-labels).
# Results: OUT/results.tgz (logs, eval JSON and text, predictions) and each job's weights in
# float16 (half.py; unhalf.py makes a checkpoint sckd reads again).
# docs/astyx.md#paper-size-on-one-gpu-2026-12-04 used the default JOBS with BUDGET=550, then
# JOBS=T:teacher_field_paper BUDGET=285. The block splits, e.g.:
#   COMMON="train.workers=2" PSEUDO="T0 T1 T2" JOBS="T0:teacher_field_paper:dataset.astyx.fold=0
#     B0:second_radar_gt_paper:dataset.astyx.fold=0 T1:... B1:... T2:... B2:..."
# The students of a teacher brought along:
#   TEACHER=.gpu/T.fp16.pt JOBS="S:ssod_paper:distill.teacher.checkpoint=@TEACHER;distill.teacher.config=null
#     K:sckd_student_paper:distill.teacher.checkpoint=@TEACHER;distill.teacher.config=null B:second_radar_gt_paper"
set -u
T0=$(date +%s); BUDGET=${BUDGET:-540}
JOBS=${JOBS:-"T:teacher_field_paper L:lidar_gt_field_paper R:second_radar_gt_field_paper"}
COMMON=${COMMON:-"dataset.astyx.split=list"}; TEACHER=${TEACHER:-}; PSEUDO=${PSEUDO:-}
PROBE_STEPS=${PROBE_STEPS:-40}; MAXE=${MAXE:-80}; RESERVE=${RESERVE:-90}; BUNDLE=${BUNDLE:-.gpu}
HERE=benchmarks/astyx_gpu
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SCKD_CACHE=/tmp/sckd_gpu_cache OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-/tmp/gpu_out}; W=/tmp/gpu_work; A=/tmp/astyx_gpu; mkdir -p $W $OUT
el() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(el)s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch,numba,numpy;print('torch',torch.__version__,torch.version.cuda,'cuda',torch.cuda.is_available(),'numba',numba.__version__,'numpy',numpy.__version__)"
[ -d $A ] || python3 $HERE/unpack.py $BUNDLE $A || exit 1
say unpacked
if [ -n "$TEACHER" ]; then python3 $HERE/unhalf.py "$TEACHER" $W/teacher.pt > /dev/null || exit 1; fi
declare -A CFG TSETS DSETS FPS NTRAIN
KEYS=""
for job in $JOBS; do
  IFS=: read -r k c s <<< "$job"; KEYS="$KEYS $k"; CFG[$k]=$c; TSETS[$k]=""; DSETS[$k]=""
  IFS=';' read -ra sets <<< "$COMMON;${s:-}"
  for x in "${sets[@]}"; do
    [ -z "$x" ] && continue; x=${x//@TEACHER/$W/teacher.pt}
    TSETS[$k]="${TSETS[$k]} --set $x"
    [[ $x == dataset.* ]] && DSETS[$k]="${DSETS[$k]} --set $x"
  done
done
probe() {  # $1 job key, then extra args -> fps on stdout ('' if it failed)
  local k=$1; shift
  rm -rf $W/probe_$k
  python3 -m sckd train experiments/astyx/${CFG[$k]} --data $A --out $W/probe_$k ${TSETS[$k]} --set train.val_every=0 \
    --set train.progress=false --set train.max_steps=$PROBE_STEPS --set train.log_every=10 "$@" > $W/probe_$k.log 2>&1
  # median of the windows after the first (the first holds start-up and cuDNN autotuning)
  grep 'step [0-9]*/' $W/probe_$k.log | grep -o '[0-9.]* frames/s' | cut -d' ' -f1 | tail -n +2 | sort -g \
    | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'
}
for k in $KEYS; do ( probe $k > $W/fps_$k ) & done; wait
for k in $KEYS; do
  FPS[$k]=$(cat $W/fps_$k)
  if [ -z "${FPS[$k]}" ]; then
    say "probe of $k failed:"; tail -5 $W/probe_$k.log
    TSETS[$k]="${TSETS[$k]} --set train.amp=false"; FPS[$k]=$(probe $k)
    [ -z "${FPS[$k]}" ] && { say "probe of $k failed without AMP too:"; tail -15 $W/probe_$k.log; }
  fi
  NTRAIN[$k]=$(grep -o '^training [^:]*: [0-9]* frames' $W/probe_$k.log | head -1 | grep -o '[0-9]* frames' | cut -d' ' -f1)
  say "probe $k (${CFG[$k]}): ${FPS[$k]} frames/s, ${NTRAIN[$k]} train frames"
done
ok=0; for k in $KEYS; do [ -n "${FPS[$k]}" ] && ok=1; done
[ $ok = 1 ] || { say "every probe failed: stopping"; cd $W && tar czf $OUT/results.tgz --exclude='*.pt' .; exit 3; }
LEFT=$(( BUDGET - $(el) - RESERVE ))
say "$LEFT s left for training"
for k in $KEYS; do
  [ -z "${FPS[$k]}" ] && continue
  E=$(python3 -c "print(max(1, min($MAXE, int(($LEFT - 25) * 0.8 * ${FPS[$k]} / ${NTRAIN[$k]:-410}))))")
  say "train $k: $E epochs"; echo $E > $W/epochs_$k; rm -rf $W/run_$k $W/pred_$k $W/eval_$k.*
  ( timeout $LEFT python3 -m sckd train experiments/astyx/${CFG[$k]} --data $A --out $W/run_$k ${TSETS[$k]} \
      --set train.val_every=0 --set train.progress=false --set train.max_ckpts=1 --set train.epochs=$E \
      --set train.log_every=50 > $W/train_$k.log 2>&1; echo "exit $?" >> $W/train_$k.log ) &
done
( sleep 20; nice -n 19 python3 -m pytest -q -p no:cacheprovider tests/test_voxelize.py -k cuda > $W/cuda_tests.log 2>&1
  nice -n 19 python3 benchmarks/nms_device_check.py >> $W/cuda_tests.log 2>&1 ) &
wait
say trained; tail -3 $W/cuda_tests.log
score() {
  local k=$1 ck=$W/run_$1/checkpoints/final.pt
  [ -f $ck ] || ck=$(ls $W/run_$k/checkpoints/step_*.pt 2>/dev/null | tail -1)
  [ -n "$ck" ] || { echo "$k: no checkpoint" > $W/eval_$k.txt; return; }
  echo "checkpoint $ck" > $W/eval_$k.txt
  python3 -m sckd -q predict $ck $A --split val --out $W/pred_$k ${DSETS[$k]} >> $W/eval_$k.txt 2>&1
  python3 -m sckd eval --pred $W/pred_$k --data $A --split val ${DSETS[$k]} --r40 \
    --json $W/eval_$k.json >> $W/eval_$k.txt 2>&1
  if [[ " $PSEUDO " == *" $k "* ]]; then
    python3 -m sckd pseudo-labels $ck --data $A --split train --sigmas 0.1,0.2,0.3,0.4,0.5 > $W/pseudo_$k.txt 2>&1
  fi
  python3 $HERE/half.py $ck $OUT/$k.fp16.pt
}
for k in $KEYS; do score $k & done; wait
say scored
for k in $KEYS; do
  echo "== $k ${CFG[$k]} ($(cat $W/epochs_$k 2>/dev/null) epochs; $(tail -1 $W/train_$k.log 2>/dev/null))"
  python3 -c "
import json,sys
try: d=json.load(open('$W/eval_$k.json'))
except Exception as e: sys.exit(print('no eval', e))
for r in ('easy','moderate','hard','entire_area'):
    print(r, *(f'{m}={d[r][m]:.2f}' for m in ('Car_3d_all','Car_3d_all_R40','Car_bev_all','Car_bev_all_R40') if m in d.get(r,{})))"
  [ -f $W/pseudo_$k.txt ] && tail -8 $W/pseudo_$k.txt
done
cd $W && tar czf $OUT/results.tgz --exclude='*.pt' --exclude='tb' . && ls -la $OUT
say done
