#!/usr/bin/env bash
# One-shot GPU run: the paper-size Astyx models under the published protocol (split list),
# trained side by side on one GPU for as many epochs as BUDGET seconds allow (a timed probe of
# PROBE_STEPS steps per model sets the epochs), then predicted and scored on val. For a GPU
# machine that gets only a small tree: the Astyx files sckd reads travel as a bundle made by
# pack.py (about 48 MB; LiDAR exact, radar in float32) and unpack.py rebuilds them there.
#   python benchmarks/astyx_gpu/pack.py ASTYX_ROOT BUNDLE      # here
#   BUNDLE=BUNDLE OUT=RESULTS bash benchmarks/astyx_gpu/run.sh # there, from the repository root
# Results: OUT/results.tgz (logs, eval JSON and text, predictions) and each model's weights in
# float16 (half.py; unhalf.py makes a checkpoint sckd reads again). Used for docs/astyx.md
# (#paper-size-on-one-gpu-2026-12-04) with BUDGET=550, then CFGS=teacher_field_paper BUDGET=285.
set -u
T0=$(date +%s); BUDGET=${BUDGET:-540}; CFGS=${CFGS:-"teacher_field_paper lidar_gt_field_paper second_radar_gt_field_paper"}
PROBE_STEPS=${PROBE_STEPS:-40}; MAXE=${MAXE:-80}; RESERVE=${RESERVE:-90}; EXTRA=${EXTRA:-}; BUNDLE=${BUNDLE:-.gpu}; HERE=benchmarks/astyx_gpu
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 SCKD_CACHE=/tmp/sckd_gpu_cache OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
OUT=${OUT:-/tmp/gpu_out}; W=/tmp/gpu_work; A=/tmp/astyx_gpu; mkdir -p $W $OUT
el() { echo $(( $(date +%s) - T0 )); }
say() { echo "[$(el)s] $*"; }
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
python3 -c "import torch,numba,numpy;print('torch',torch.__version__,torch.version.cuda,'cuda',torch.cuda.is_available(),'numba',numba.__version__,'numpy',numpy.__version__)"
[ -d $A ] || python3 $HERE/unpack.py $BUNDLE $A || exit 1
say unpacked
COMMON="--set dataset.astyx.split=list --set train.val_every=0 --set train.progress=false --set train.max_ckpts=1 $EXTRA"
probe() {  # $1 config, $2 extra sets -> fps on stdout ('' if it failed)
  local c=$1; shift
  rm -rf $W/probe_$c
  python3 -m sckd train experiments/astyx/$c --data $A --out $W/probe_$c $COMMON --set train.max_steps=$PROBE_STEPS \
    --set train.log_every=10 "$@" > $W/probe_$c.log 2>&1
  # median of the windows after the first (the first holds start-up and cuDNN autotuning)
  grep 'step [0-9]*/' $W/probe_$c.log | grep -o '[0-9.]* frames/s' | cut -d' ' -f1 | tail -n +2 | sort -g | awk '{a[NR]=$1} END {if (NR) print a[int((NR+1)/2)]}'
}
declare -A FPS SETS
for c in $CFGS; do ( probe $c > $W/fps_$c ) & done; wait
for c in $CFGS; do
  FPS[$c]=$(cat $W/fps_$c); SETS[$c]=""
  if [ -z "${FPS[$c]}" ]; then
    say "probe of $c failed:"; tail -5 $W/probe_$c.log
    SETS[$c]="--set train.amp=false"; FPS[$c]=$(probe $c --set train.amp=false)
    [ -z "${FPS[$c]}" ] && { say "probe of $c failed without AMP too:"; tail -15 $W/probe_$c.log; }
  fi
  say "probe $c: ${FPS[$c]} frames/s ${SETS[$c]}"
done
ok=0; for c in $CFGS; do [ -n "${FPS[$c]}" ] && ok=1; done
[ $ok = 1 ] || { say "every probe failed: stopping"; cd $W && tar czf $OUT/results.tgz --exclude='*.pt' .; exit 3; }
NTRAIN=$(cat $(find $SCKD_CACHE -path "*list*" -name train.txt 2>/dev/null | head -1) 2>/dev/null | wc -l); [ "$NTRAIN" -gt 0 ] || NTRAIN=410
LEFT=$(( BUDGET - $(el) - RESERVE ))
say "train frames $NTRAIN, $LEFT s left for training"
for c in $CFGS; do
  [ -z "${FPS[$c]}" ] && continue
  E=$(python3 -c "print(max(1, min($MAXE, int(($LEFT - 25) * 0.8 * ${FPS[$c]} / $NTRAIN))))")
  say "train $c: $E epochs"; echo $E > $W/epochs_$c; rm -rf $W/run_$c $W/pred_$c $W/eval_$c.*
  ( timeout $LEFT python3 -m sckd train experiments/astyx/$c --data $A --out $W/run_$c $COMMON ${SETS[$c]} \
      --set train.epochs=$E --set train.log_every=50 > $W/train_$c.log 2>&1; echo "exit $?" >> $W/train_$c.log ) &
done
( sleep 20; nice -n 19 python3 -m pytest -q -p no:cacheprovider tests/test_voxelize.py -k cuda > $W/cuda_tests.log 2>&1
  nice -n 19 python3 benchmarks/nms_device_check.py >> $W/cuda_tests.log 2>&1 ) &
wait
say trained; tail -3 $W/cuda_tests.log
score() {
  local c=$1 ck=$W/run_$1/checkpoints/final.pt
  [ -f $ck ] || ck=$(ls $W/run_$c/checkpoints/step_*.pt 2>/dev/null | tail -1)
  [ -n "$ck" ] || { echo "$c: no checkpoint" > $W/eval_$c.txt; return; }
  echo "checkpoint $ck" > $W/eval_$c.txt
  python3 -m sckd -q predict $ck $A --split val --out $W/pred_$c --set dataset.astyx.split=list >> $W/eval_$c.txt 2>&1
  python3 -m sckd eval --pred $W/pred_$c --data $A --split val --set dataset.astyx.split=list --r40 \
    --json $W/eval_$c.json >> $W/eval_$c.txt 2>&1
  python3 $HERE/half.py $ck $OUT/$c.fp16.pt
}
for c in $CFGS; do score $c & done; wait
say scored
for c in $CFGS; do
  echo "== $c ($(cat $W/epochs_$c 2>/dev/null) epochs; $(tail -1 $W/train_$c.log))"
  python3 -c "
import json,sys
try: d=json.load(open('$W/eval_$c.json'))
except Exception as e: sys.exit(print('no eval', e))
for r in ('easy','moderate','hard','entire_area'):
    print(r, *(f'{k}={d[r][k]:.2f}' for k in ('Car_3d_all','Car_3d_all_R40','Car_bev_all','Car_bev_all_R40') if k in d.get(r,{})))"
done
cd $W && tar czf $OUT/results.tgz --exclude='*.pt' --exclude='tb' . && ls -la $OUT
say done
