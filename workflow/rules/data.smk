# Data stages: face shape space, synthetic pool and cohort, ingestion, split.


rule face_space:
    output:
        "results/model/face_space.npz",
    input:
        code("template", "shape_space", "render", "ict", "ingest"),
        ict="src/facecover/data/ict_face_model.npz",
    params:
        lb=config["shape_space"]["lb_modes"],
        detail=config["shape_space"]["detail_modes"],
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/face_space/face_space.tsv"
    log:
        "results/logs/face_space.log",
    shell:
        "facecover template --lb-modes {params.lb} --detail-modes {params.detail} --out {output} 2> {log}"


rule pool:
    output:
        "results/pool/identities.npz",
    input:
        space="results/model/face_space.npz",
        code=code("cohort", "shape_space"),
    params:
        size=config["cohort"]["pool_size"],
        seed=config["seed"],
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/pool/pool.tsv"
    log:
        "results/logs/pool.log",
    shell:
        "facecover pool --space {input.space} --count {params.size} --seed {params.seed} --out {output} 2> {log}"


rule synthetic_scan:
    output:
        scan="results/scans/{subject}.ply",
        truth="results/truth/{subject}.npz",
    input:
        space="results/model/face_space.npz",
        code=code("cohort", "shape_space"),
    params:
        seed=config["seed"],
        settings=settings_json("scans", "source", "dir", "units"),
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/synthetic_scan/{subject}.tsv"
    log:
        "results/logs/synthetic_scan/{subject}.log",
    shell:
        "facecover synth-scan --space {input.space} --subject {wildcards.subject} --seed {params.seed}"
        " --settings {params.settings:q}"
        " --out-scan {output.scan} --out-truth {output.truth} 2> {log}"


rule ingest:
    output:
        mesh="results/registered/{subject}.ply",
        report="results/registered/{subject}.json",
    input:
        space="results/model/face_space.npz",
        scan=raw_scan,
        code=code("ingest", "render", "template"),
    params:
        units=config["scans"]["units"],
        settings=settings_json("registration"),
        seed=config["seed"],
        truth=truth_arg,
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/ingest/{subject}.tsv"
    log:
        "results/logs/ingest/{subject}.log",
    shell:
        "facecover ingest --space {input.space} --scan {input.scan} --units {params.units}"
        " --settings {params.settings:q}"
        " --seed {params.seed} {params.truth} --out {output.mesh} --report {output.report} 2> {log}"


rule injured_scan:
    output:
        scan="results/scans_injured/{subject}.ply",
        truth="results/truth_injured/{subject}.npz",
    input:
        space="results/model/face_space.npz",
        truth="results/truth/{subject}.npz",
        scar=f"results/scars/{{subject}}/{config['patient_variant']}.npz",
        code=code("cohort", "scars"),
    params:
        seed=config["seed"],
        settings=settings_json("scans", "source", "dir", "units"),
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/injured_scan/{subject}.tsv"
    log:
        "results/logs/injured_scan/{subject}.log",
    shell:
        "facecover injured-scan --space {input.space} --subject {wildcards.subject} --truth {input.truth}"
        " --scar {input.scar} --seed {params.seed} --settings {params.settings:q}"
        " --out-scan {output.scan} --out-truth {output.truth} 2> {log}"


use rule ingest as ingest_injured with:
    output:
        mesh="results/registered_injured/{subject}.ply",
        report="results/registered_injured/{subject}.json",
    input:
        space="results/model/face_space.npz",
        scan="results/scans_injured/{subject}.ply",
        truth="results/truth_injured/{subject}.npz",
        code=code("ingest", "render", "template"),
    params:
        units=config["scans"]["units"],
        settings=settings_json("registration"),
        seed=config["seed"],
        truth=lambda wildcards: f"--truth results/truth_injured/{wildcards.subject}.npz",
    benchmark:
        "results/benchmarks/ingest_injured/{subject}.tsv"
    log:
        "results/logs/ingest_injured/{subject}.log",


rule split:
    output:
        "results/splits.csv",
    input:
        code=code("split"),
    params:
        subjects=" ".join(SUBJECTS),
        ratios=" ".join(str(r) for r in config["split"]["ratios"]),
        seed=config["seed"],
    conda:
        "../../envs/data.yaml"
    benchmark:
        "results/benchmarks/split/split.tsv"
    log:
        "results/logs/split.log",
    shell:
        "facecover split --subjects {params.subjects} --ratios {params.ratios} --seed {params.seed}"
        " --out {output} 2> {log}"
