# Inference for one subject or patient: image -> fine-tuned model -> healthy face fitted to the injured scan,
# and the accuracy of the resulting covers against the reference covers (test subjects).

INFER = config["infer"]


rule infer:
    output:
        mesh="results/reconstructions/{subject}.ply",
        wound="results/reconstructions/{subject}_wound.npz",
        report="results/reconstructions/{subject}.json",
    input:
        unpack(infer_inputs),
        code=code(*LEARN_CODE, "learn/evaluate", "learn/infer", "photo"),
    params:
        source=infer_source_args,
        image=lambda wildcards: "" if wildcards.subject in PATIENTS else f"--image {config['patient_variant']}_{INFER['view']}",
        experiment=INFER["experiment"],
        experiments=" ".join(EXPERIMENTS),
        fit=FIT_SETTINGS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/infer/{subject}.tsv"
    log:
        "results/logs/infer/{subject}.log",
    shell:
        "facecover infer --subject {wildcards.subject} --space {input.space} --decoder {input.decoder}"
        " --experiment {params.experiment} --experiments {params.experiments} --table {input.table}"
        " --checkpoints-dir results/checkpoints {params.source} {params.image} --injured {input.injured}"
        " --fit-noise {input.fit_noise} --fit-settings {params.fit:q}"
        " --out {output.mesh} --out-wound {output.wound} --report {output.report} 2> {log}"


rule cover_accuracy:
    output:
        report(
            "results/metrics/covers.csv",
            caption="../report/cover_accuracy.rst",
            category="Covers",
            subcategory="accuracy",
        ),
    input:
        predicted=expand("results/fillings/{subject}{ext}", subject=TEST_SUBJECTS, ext=(".ply", "_footprint.npz")),
        reference=expand(f"{REF}/fillings/{{subject}}{{ext}}", subject=TEST_SUBJECTS, ext=(".ply", "_footprint.npz")),
        prints=expand("results/prints/{subject}.json", subject=TEST_SUBJECTS),
        code=code("filling", "printing"),
    params:
        subjects=" ".join(TEST_SUBJECTS),
        printer=settings_json("printer", "gcode"),
        thickness=config["filling"].get("min_thickness_mm", 1.0),
        variant=config["patient_variant"],
        reference=lambda wildcards, input: os.path.dirname(input.reference[0]),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/cover_accuracy/cover_accuracy.tsv"
    log:
        "results/logs/cover_accuracy.log",
    shell:
        "facecover cover-accuracy --subjects {params.subjects} --scars-dir results/scars"
        " --variant {params.variant} --predicted-dir results/fillings --reference-dir {params.reference}"
        " --printer {params.printer:q} --min-thickness-mm {params.thickness} --out {output} 2> {log}"
