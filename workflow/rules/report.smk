# Tables and figures over all subjects for `snakemake --report`.


rule registration_summary:
    output:
        table=report(
            "results/report/registration.csv",
            caption="../report/registration.rst",
            category="Registration",
        ),
        figure=report(
            "results/report/registration.png",
            caption="../report/registration.rst",
            category="Registration",
        ),
    input:
        reports=expand("results/registered/{subject}.json", subject=SUBJECTS),
        code=code("summary"),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/registration_summary/registration_summary.tsv"
    log:
        "results/logs/registration_summary.log",
    shell:
        "facecover summary --kind registration --reports {input.reports} --out {output.table}"
        " --figure {output.figure} 2> {log}"


rule covers_summary:
    output:
        report(
            "results/report/covers_reference.csv",
            caption="../report/covers.rst",
            category="Covers",
        ),
    input:
        reports=expand("results/covers_reference/prints/{subject}.json", subject=TEST_SUBJECTS),
        code=code("summary"),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/covers_summary/covers_summary.tsv"
    log:
        "results/logs/covers_summary.log",
    shell:
        "facecover summary --kind covers --reports {input.reports} --out {output} 2> {log}"


rule encoder_summary:
    output:
        table=report(
            "results/report/encoder.csv",
            caption="../report/encoder.rst",
            category="Identity encoder",
        ),
        figure=report(
            "results/report/encoder.png",
            caption="../report/encoder.rst",
            category="Identity encoder",
        ),
    input:
        encoder="results/encoder/arcface.json",
        embeddings=expand("results/embeddings/{subject}.npz", subject=SUBJECTS),
        code=code("summary", "encoder"),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/encoder_summary/encoder_summary.tsv"
    log:
        "results/logs/encoder_summary.log",
    shell:
        "facecover summary --kind encoder --encoder-report {input.encoder} --reports {input.embeddings}"
        " --out {output.table} --figure {output.figure} 2> {log}"


rule learning_report:
    output:
        curves=report(
            "results/report/learning/curves.png",
            caption="../report/learning_curves.rst",
            category="Learning",
        ),
        iou=report(
            "results/report/learning/iou.png",
            caption="../report/learning_iou.rst",
            category="Learning",
        ),
        heatmap=report(
            "results/report/learning/heatmap.png",
            caption="../report/learning_heatmap.rst",
            category="Learning",
        ),
    input:
        table="results/metrics/table.csv",
        base_log="results/metrics/base_train.csv",
        swav_logs=expand("results/metrics/swav_{fraction}.csv", fraction=FRACTIONS),
        finetune_logs=expand("results/metrics/{experiment}_train.csv", experiment=EXPERIMENTS),
        checkpoints=expand("results/checkpoints/recon_{experiment}.pt", experiment=EXPERIMENTS),
        space="results/model/face_space.npz",
        decoder="results/model/decoder.npz",
        fit_noise="results/model/fit_noise.npz",
        split="results/splits.csv",
        embeddings=ALL_EMBEDDINGS,
        registered=ALL_REGISTERED,
        scars=ALL_SCARS,
        code=code("summary", "learn/evaluate", "learn/infer"),
    params:
        fit=FIT_SETTINGS,
        variant=config["patient_variant"],
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/learning_report/learning_report.tsv"
    log:
        "results/logs/learning_report.log",
    shell:
        "facecover learning-report --table {input.table} --base-log {input.base_log} --swav-logs {input.swav_logs}"
        " --finetune-logs {input.finetune_logs} --space {input.space} --decoder {input.decoder}"
        " --checkpoints-dir results/checkpoints --fit-noise {input.fit_noise} --fit-settings {params.fit:q}"
        " --split {input.split} --embeddings-dir results/embeddings --registered-dir results/registered"
        " --scars-dir results/scars --variant {params.variant} --out-curves {output.curves}"
        " --out-iou {output.iou} --out-heatmap {output.heatmap} 2> {log}"


rule stage_times:
    output:
        table=report(
            "results/report/stages.csv",
            caption="../report/stages.rst",
            category="Run time and memory",
        ),
        jobs="results/report/stage_jobs.csv",
        figure=report(
            "results/report/stages.png",
            caption="../report/stages.rst",
            category="Run time and memory",
        ),
    input:
        benchmarks=all_benchmarks(),
        code=code("summary"),
    conda:
        "../../envs/covers.yaml"
    log:
        "results/logs/stage_times.log",
    shell:
        "facecover stage-times --benchmarks {input.benchmarks} --out {output.table} --out-jobs {output.jobs}"
        " --figure {output.figure} 2> {log}"
