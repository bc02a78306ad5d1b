#!/usr/bin/env bash
# Runs a tiny config of the workflow through a real single-node SLURM cluster on localhost
# (../shared/ci/start-slurm.sh) and proves from the controller log that the jobs went
# through sbatch. The encoder and embed rules ask for a GPU (gpu: true); SLURM gives them the
# cluster's fake GPU (CUDA_VISIBLE_DEVICES set, no CUDA), and they must still run, on the CPU.
# The cluster is stopped on exit, also when the test fails.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
# the project's shared CI scripts: ../shared/ci beside the clone (where CI clones it), or FACECOVER_CI_SHARED
shared="${FACECOVER_CI_SHARED:-$repo/../shared/ci}"
if [ ! -f "$shared/start-slurm.sh" ]; then
  echo "[slurm-test] $shared/start-slurm.sh not found: clone the repository beside shared/, or set" \
       "FACECOVER_CI_SHARED to the folder holding start-slurm.sh" >&2
  exit 1
fi
shared="$(cd "$shared" && pwd)"
export SLURM_LOCAL_DIR="${SLURM_LOCAL_DIR:-/tmp/facecover-slurm}"
trap 'bash "$shared/stop-slurm.sh" || true' EXIT
start=$SECONDS
SLURM_CLEAN=1 bash "$shared/start-slurm.sh"
submitted_before=$(grep -c "_slurm_rpc_submit_batch_job" "$SLURM_LOCAL_DIR/log/slurmctld.log" 2>/dev/null || true)

work="$(mktemp -d /tmp/facecover-slurm-run.XXXXXX)"
ln -s "$repo/workflow" "$work/workflow"
ln -s "$repo/src" "$work/src"
cp "$repo/config.yaml" "$work/config.yaml"
targets=(results/scars/subject02/00.npz results/embeddings/subject01.npz)
echo "[slurm-test] running ${targets[*]} in $work"
"$repo/.venv/bin/snakemake" "${targets[@]}" --snakefile "$repo/Snakefile" --directory "$work" \
  --profile "$repo/.ci/slurm" --configfile "$repo/.test/slurm-config.yaml" \
  > "$work/snakemake.log" 2>&1 || { tail -n 60 "$work/snakemake.log"; exit 1; }

ids=$(grep -oE "SLURM jobid [0-9]+|external jobid '?[0-9]+" "$work/snakemake.log" | grep -oE "[0-9]+$" | sort -un | tr '\n' ' ')
submitted=$(( $(grep -c "_slurm_rpc_submit_batch_job" "$SLURM_LOCAL_DIR/log/slurmctld.log") - submitted_before ))
echo "[slurm-test] SLURM job ids: $ids"
echo "[slurm-test] sbatch submissions in the controller log: $submitted"
grep "_slurm_rpc_submit_batch_job" "$SLURM_LOCAL_DIR/log/slurmctld.log" | tail -n "$submitted" | sed 's/^/[slurm-test]   /'
for t in "${targets[@]}" results/registered/subject01.json results/encoder/arcface.onnx; do
  test -s "$work/$t" || { echo "[slurm-test] missing output $t"; exit 1; }
done
# face_space, pool, render_pool, encoder, embed, and one group job running 2 x synthetic_scan, 2 x ingest,
# 2 x scars and render (the profile's `groups`: both subjects' chains in one sbatch job) = 6 submissions
# for 12 jobs
if (( submitted < 6 )); then echo "[slurm-test] expected at least 6 sbatch submissions"; exit 1; fi
grep -q "Group job subject_data" "$work/snakemake.log" \
  || { echo "[slurm-test] the per-subject stages did not run as a SLURM job group"; exit 1; }
grouped=$(ls "$work"/.snakemake/slurm_logs/group_subject_data_*/*.log 2>/dev/null | head -n 1)
test -n "$grouped" || { echo "[slurm-test] no SLURM log of the group job subject_data"; exit 1; }
echo "[slurm-test] one sbatch job ran synthetic_scan, ingest, scars and render of both subjects: $grouped"
# the GPU-requesting jobs (encoder, embed) were submitted with gpu=1, SLURM gave them the fake GPU
# (CUDA_VISIBLE_DEVICES=0) and they ran on the CPU after the one-line notice
gpu_jobs=$(grep -cE "resources: .*[ ,]gpu=1(,|$)" "$work/snakemake.log" || true)
echo "[slurm-test] jobs submitted with gpu=1: $gpu_jobs ($(cd "$work/.snakemake/slurm_logs" && ls rule_encoder/*.log rule_embed/*/*.log | tr '\n' ' '))"
if (( gpu_jobs < 2 )); then echo "[slurm-test] expected the encoder and embed jobs to request a GPU"; exit 1; fi
for rule_log in results/logs/encoder.log results/logs/embed/subject01.log; do
  grep -H "no usable CUDA GPU (CUDA_VISIBLE_DEVICES='0'" "$work/$rule_log" | sed 's/^/[slurm-test]   /' \
    || { echo "[slurm-test] $rule_log: no CPU-fallback notice, so the job did not get the fake GPU"; exit 1; }
done
# the README's promise on a cluster: results/prints/subject07.stl plans through the same profile (dry run:
# the whole learning chain is too long for CI), every job as an sbatch job of the slurm executor
"$repo/.venv/bin/snakemake" -n results/prints/subject07.stl --snakefile "$repo/Snakefile" --directory "$work" \
  --profile "$repo/.ci/slurm" --configfile "$repo/.test/slurm-config.yaml" > "$work/prints-dry-run.log" 2>&1 \
  || { tail -n 40 "$work/prints-dry-run.log"; exit 1; }
for rule in decoder base swav finetune evaluate_experiment_val metrics_table_val infer watertight filling print; do
  grep -qE "^rule $rule:" "$work/prints-dry-run.log" \
    || { echo "[slurm-test] dry run of results/prints/subject07.stl does not plan rule $rule"; exit 1; }
done
grep -q "results/prints/subject07.stl" "$work/prints-dry-run.log" || { echo "[slurm-test] subject07's print not planned"; exit 1; }
echo "[slurm-test] results/prints/subject07.stl plans through the SLURM profile: $(grep -cE '^rule ' "$work/prints-dry-run.log") jobs"
echo "[slurm-test] OK: $submitted sbatch submissions (12 jobs) through SLURM in $(( SECONDS - start )) s"
