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
        code=code(*LEARN_CODE, "learn/evaluate", "learn/infer", "photo", "marked_wound"),
    params:
        source=infer_source_args,
        image=lambda wildcards: "" if wildcards.subject in PATIENTS else f"--image {config['patient_variant']}_{INFER['view']}",
        experiment=INFER["experiment"],
        experiments=" ".join(EXPERIMENTS),
        fit=FIT_SETTINGS,
        gate=on_implausible,
        no_wound=lambda wildcards: "stop" if wildcards.subject in PATIENTS else "fallback",
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
        " --fit-noise {input.fit_noise} --fit-settings {params.fit:q} --on-implausible {params.gate}"
        " --if-no-wound {params.no_wound} --out {output.mesh} --out-wound {output.wound} --report {output.report} 2> {log}"


use rule infer as infer_uninjured with:
    output:
        mesh="results/uninjured/{subject}.ply",
        wound="results/uninjured/{subject}_wound.npz",
        report="results/uninjured/{subject}.json",
    input:
        unpack(uninjured_infer_inputs),
        code=code(*LEARN_CODE, "learn/evaluate", "learn/infer", "photo", "marked_wound"),
    params:
        source=infer_source_args,
        image=lambda wildcards: "" if wildcards.subject in PATIENTS else f"--image {config['patient_variant']}_{INFER['view']}",
        experiment=INFER["experiment"],
        experiments=" ".join(EXPERIMENTS),
        fit=FIT_SETTINGS,
        gate=on_implausible,
        no_wound="record",
    benchmark:
        "results/benchmarks/infer_uninjured/{subject}.tsv"
    log:
        "results/logs/infer_uninjured/{subject}.log",


if SYNTHETIC:

    rule cover_accuracy:
        output:
            report(
                "results/metrics/covers.csv",
                caption="../report/cover_accuracy.rst",
                category="Covers",
                subcategory="accuracy",
            ),
        input:
            predicted=expand("results/fillings/{subject}.ply", subject=TEST_SUBJECTS),
            reference=expand(f"{REF}/fillings/{{subject}}.ply", subject=TEST_SUBJECTS),
            found=expand("results/reconstructions/{subject}{ext}", subject=TEST_SUBJECTS, ext=(".json", "_wound.npz")),
            uninjured=expand("results/uninjured/{subject}.json", subject=TEST_SUBJECTS),
            registered=expand("results/registered/{subject}.json", subject=TEST_SUBJECTS),
            registered_injured=expand("results/registered_injured/{subject}{ext}", subject=TEST_SUBJECTS,
                                      ext=(".ply", ".json")),
            truth=expand("results/truth/{subject}.npz", subject=TEST_SUBJECTS),
            truth_injured=expand("results/truth_injured/{subject}.npz", subject=TEST_SUBJECTS),
            prints=expand("results/prints/{subject}.json", subject=TEST_SUBJECTS),
            code=code("cover_scores", "printing"),
        params:
            subjects=" ".join(TEST_SUBJECTS),
            printer=settings_json("printer", "gcode"),
            thickness=config["filling"].get("min_thickness_mm", 1.0),
        conda:
            "../../envs/covers.yaml"
        benchmark:
            "results/benchmarks/cover_accuracy/cover_accuracy.tsv"
        log:
            "results/logs/cover_accuracy.log",
        shell:
            "facecover cover-scores --subjects {params.subjects} --fillings-dir results/fillings"
            " --reference-dir results/covers_reference/fillings --registered-dir results/registered"
            " --registered-injured-dir results/registered_injured --reconstructions-dir results/reconstructions"
            " --uninjured-dir results/uninjured --truth-dir results/truth --truth-injured-dir results/truth_injured"
            " --printer {params.printer:q} --min-thickness-mm {params.thickness} --out {output} 2> {log}"

else:

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
