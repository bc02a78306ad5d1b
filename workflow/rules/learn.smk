# Learning: linear geometry decoder, base model (pool), SwAV pretraining, fine-tuning (cohort), evaluation.
# Every rule reads embedding caches and meshes; none runs the encoder.

FRACTIONS = [str(float(f)) for f in config["swav"]["fractions"]]
EXPERIMENTS = {"nossl": None} | {f"ssl{round(100 * float(f))}": f for f in FRACTIONS}
MEANFACE_FIT = "meanface+fit"  # the fit with the mean face as its prior: no image
BASELINES = ["mean", "injured", "completion", MEANFACE_FIT]
FIT_SETTINGS = settings_json("fit")
REGION_WEIGHTS = json.dumps(config["region_weights"], sort_keys=True)
ALL_EMBEDDINGS = expand("results/embeddings/{subject}.npz", subject=SUBJECTS)
ALL_REGISTERED = expand("results/registered/{subject}.ply", subject=SUBJECTS)
ALL_SCARS = expand("results/scars/{subject}/{variant}.{ext}", subject=SUBJECTS, variant=VARIANTS, ext=("ply", "npz"))
LEARN_CODE = ("learn/__init__", "learn/decoder", "learn/network", "learn/data", "learn/train", "device")


wildcard_constraints:
    experiment="|".join(EXPERIMENTS),
    baseline="|".join(re.escape(b) for b in BASELINES),
    fraction="|".join(re.escape(f) for f in FRACTIONS),


rule decoder:
    output:
        model="results/model/decoder.npz",
        report="results/model/decoder.json",
    input:
        unpack(decoder_inputs),
        space="results/model/face_space.npz",
        code=code("learn/decoder", "learn/__init__"),
    params:
        source=lambda wildcards, input: f"--model {shlex.quote(input.model)}" if config["decoder"]["model"] else f"--pool {input.pool}",
        components=config["decoder"]["components"],
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/decoder/decoder.tsv"
    log:
        "results/logs/decoder.log",
    shell:
        "facecover decoder --space {input.space} {params.source} --components {params.components}"
        " --out {output.model} --report {output.report} 2> {log}"


rule base:
    output:
        model="results/checkpoints/base.pt",
        log="results/metrics/base_train.csv",
    input:
        space="results/model/face_space.npz",
        decoder="results/model/decoder.npz",
        pool="results/pool/identities.npz",
        embeddings="results/embeddings/pool.npz",
        code=code(*LEARN_CODE),
    params:
        settings=settings_json("base"),
        weights=REGION_WEIGHTS,
        seed=config["seed"],
        device=config["device"],
    threads: 1  # small networks: 2 torch threads gave the same weights no faster (base: 29 s vs 27 s)
    resources:
        gpu=GPUS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/base/base.tsv"
    log:
        "results/logs/base.log",
    shell:
        "facecover base --space {input.space} --decoder {input.decoder} --pool {input.pool}"
        " --embeddings {input.embeddings} --settings {params.settings:q} --region-weights {params.weights:q}"
        " --seed {params.seed} --device {params.device} --threads {threads} --out {output.model} --log {output.log}"
        " 2> {log}"


rule swav:
    output:
        model="results/checkpoints/swav_{fraction}.pt",
        log="results/metrics/swav_{fraction}.csv",
    input:
        base="results/checkpoints/base.pt",
        split="results/splits.csv",
        embeddings=ALL_EMBEDDINGS,
        code=code(*LEARN_CODE, "learn/swav"),
    params:
        settings=settings_json("swav", "fractions"),
        seed=config["seed"],
        device=config["device"],
    threads: 1
    resources:
        gpu=GPUS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/swav/{fraction}.tsv"
    log:
        "results/logs/swav_{fraction}.log",
    shell:
        "facecover swav --base {input.base} --split {input.split} --embeddings-dir results/embeddings"
        " --fraction {wildcards.fraction} --settings {params.settings:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --out {output.model} --log {output.log} 2> {log}"


rule finetune:
    output:
        model="results/checkpoints/recon_{experiment}.pt",
        log="results/metrics/{experiment}_train.csv",
    input:
        unpack(finetune_inputs),
        base="results/checkpoints/base.pt",
        space="results/model/face_space.npz",
        decoder="results/model/decoder.npz",
        split="results/splits.csv",
        embeddings=ALL_EMBEDDINGS,
        registered=ALL_REGISTERED,
        code=code(*LEARN_CODE),
    params:
        swav=finetune_swav_args,
        settings=settings_json("finetune"),
        weights=REGION_WEIGHTS,
        seed=config["seed"],
        device=config["device"],
    threads: 1
    resources:
        gpu=GPUS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/finetune/{experiment}.tsv"
    log:
        "results/logs/finetune_{experiment}.log",
    shell:
        "facecover finetune --experiment {wildcards.experiment} --space {input.space} --decoder {input.decoder}"
        " --base {input.base} {params.swav} --split {input.split} --embeddings-dir results/embeddings"
        " --registered-dir results/registered --settings {params.settings:q} --region-weights {params.weights:q}"
        " --seed {params.seed} --device {params.device} --threads {threads} --out {output.model}"
        " --log {output.log} 2> {log}"


EVALUATION_INPUTS = dict(
    space="results/model/face_space.npz",
    decoder="results/model/decoder.npz",
    split="results/splits.csv",
    embeddings=ALL_EMBEDDINGS,
    registered=ALL_REGISTERED,
    scars=ALL_SCARS,
    truth=expand("results/truth/{subject}.npz", subject=SUBJECTS) if config["scans"]["source"] == "synthetic" else [],
    code=code(*LEARN_CODE, "learn/evaluate", "learn/infer"),
)
TRUTH_ARG = "--truth-dir results/truth" if config["scans"]["source"] == "synthetic" else ""


rule fit_noise:
    output:
        "results/model/fit_noise.npz",
    input:
        space="results/model/face_space.npz",
        decoder="results/model/decoder.npz",
        registered=expand("results/registered/{subject}.ply", subject=TRAIN_SUBJECTS),
        code=code(*LEARN_CODE, "learn/evaluate", "learn/infer"),
    params:
        settings=FIT_SETTINGS,
        seed=config["seed"],
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/fit_noise/fit_noise.tsv"
    log:
        "results/logs/fit_noise.log",
    shell:
        "facecover fit-noise --space {input.space} --decoder {input.decoder} --registered {input.registered}"
        " --settings {params.settings:q} --seed {params.seed} --out {output} 2> {log}"


rule evaluate_experiment:
    output:
        "results/metrics/{experiment}_test.csv",
    input:
        checkpoint="results/checkpoints/recon_{experiment}.pt",
        **EVALUATION_INPUTS,
    params:
        threshold=config["evaluate"]["wound_threshold_mm"],
        truth=TRUTH_ARG,
        fit="",
        fit_settings="",
        which="test",
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/evaluate_experiment/{experiment}.tsv"
    log:
        "results/logs/evaluate/{experiment}.log",
    shell:
        "facecover evaluate --method {wildcards.experiment} --checkpoint {input.checkpoint} --space {input.space} --decoder {input.decoder}"
        " --split {input.split} --set {params.which} --embeddings-dir results/embeddings --registered-dir results/registered"
        " --scars-dir results/scars {params.truth} --threshold-mm {params.threshold} {params.fit}"
        " {params.fit_settings} --out {output} 2> {log}"


use rule evaluate_experiment as evaluate_experiment_val with:
    output:
        "results/metrics/{experiment}_val.csv",
    params:
        threshold=config["evaluate"]["wound_threshold_mm"],
        truth=TRUTH_ARG,
        fit="",
        fit_settings="",
        which="val",
    benchmark:
        "results/benchmarks/evaluate_experiment_val/{experiment}.tsv"
    log:
        "results/logs/evaluate/{experiment}_val.log",


rule metrics_table_val:
    output:
        "results/metrics/table_val.csv",
    input:
        results=expand("results/metrics/{experiment}_val.csv", experiment=EXPERIMENTS),
        code=code("learn/evaluate"),
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/metrics_table_val/metrics_table_val.tsv"
    log:
        "results/logs/metrics_table_val.log",
    shell:
        "facecover table --results {input.results} --out {output} 2> {log}"


rule evaluate_experiment_fit:
    output:
        "results/metrics/{experiment}+fit_test.csv",
    input:
        unpack(fit_noise_input),
        checkpoint="results/checkpoints/recon_{experiment}.pt",
        **EVALUATION_INPUTS,
    params:
        threshold=config["evaluate"]["wound_threshold_mm"],
        truth=TRUTH_ARG,
        fit=fit_args,
        fit_settings=fit_settings_arg,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/evaluate_experiment_fit/{experiment}.tsv"
    log:
        "results/logs/evaluate/{experiment}+fit.log",
    shell:
        "facecover evaluate --method {wildcards.experiment}+fit --checkpoint {input.checkpoint} --space {input.space} --decoder {input.decoder}"
        " --split {input.split} --embeddings-dir results/embeddings --registered-dir results/registered"
        " --scars-dir results/scars {params.truth} --threshold-mm {params.threshold} {params.fit}"
        " {params.fit_settings} --out {output} 2> {log}"


rule evaluate_baseline:
    output:
        "results/metrics/{baseline}_test.csv",
    input:
        unpack(fit_noise_input),
        **EVALUATION_INPUTS,
    params:
        threshold=config["evaluate"]["wound_threshold_mm"],
        truth=TRUTH_ARG,
        fit=fit_args,
        fit_settings=fit_settings_arg,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/evaluate_baseline/{baseline}.tsv"
    log:
        "results/logs/evaluate/{baseline}.log",
    shell:
        "facecover evaluate --method {wildcards.baseline:q} --space {input.space} --decoder {input.decoder}"
        " --split {input.split} --embeddings-dir results/embeddings --registered-dir results/registered"
        " --scars-dir results/scars {params.truth} --threshold-mm {params.threshold} {params.fit}"
        " {params.fit_settings} --out {output} 2> {log}"


METHODS = [*EXPERIMENTS, *(f"{e}+fit" for e in EXPERIMENTS), *BASELINES]


rule metrics_table:
    output:
        report(
            "results/metrics/table.csv",
            caption="../report/learning.rst",
            category="Learning",
        ),
    input:
        results=expand("results/metrics/{method}_test.csv", method=METHODS),
        code=code("learn/evaluate"),
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/metrics_table/metrics_table.tsv"
    log:
        "results/logs/metrics_table.log",
    shell:
        "facecover table --results {input.results} --out {output} 2> {log}"
