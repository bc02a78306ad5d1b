# The marking page of each patient: the scan with the wound inference found, to mark or correct it in a
# browser; its Save gives wound.json for the patient's folder (then only that patient's inference and cover
# rerun). Without a reconstruction yet, `facecover mark` without --wound makes the same page unmarked.


rule mark:
    output:
        report(
            "results/mark/{subject}.html",
            caption="../report/mark.rst",
            category="Covers",
            subcategory="mark the wound",
            labels={"patient": "{subject}"},
        ),
    input:
        scan=raw_scan,
        registered="results/registered/{subject}.ply",
        registration="results/registered/{subject}.json",
        wound="results/reconstructions/{subject}_wound.npz",
        code=code("mark", "viewer"),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/mark/{subject}.tsv"
    log:
        "results/logs/mark/{subject}.log",
    shell:
        "facecover mark --scan {input.scan:q} --registered {input.registered} --registration {input.registration}"
        " --wound {input.wound} --title {wildcards.subject:q} --out {output} 2> {log}"
