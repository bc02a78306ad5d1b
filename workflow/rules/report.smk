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
        reports=expand("results/covers_reference/prints/{subject}.json", subject=SUBJECTS),
        code=code("summary"),
    conda:
        "../../envs/covers.yaml"
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
    log:
        "results/logs/encoder_summary.log",
    shell:
        "facecover summary --kind encoder --encoder-report {input.encoder} --reports {input.embeddings}"
        " --out {output.table} --figure {output.figure} 2> {log}"
