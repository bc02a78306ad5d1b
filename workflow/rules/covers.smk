# From meshes to print: watertight healthy face, cover solid, checked STL + profile + G-code, preview.
# The cover of a subject (results/{watertight,fillings,prints}/) is made from the healthy face that inference
# reconstructed (image + fit) and the wound it found; the *reference* cover (results/covers_reference/) from
# the subject's true healthy registered mesh, with the wound where the two differ.

rule watertight:
    output:
        mesh="results/watertight/{subject}.ply",
        report="results/watertight/{subject}.json",
    input:
        healthy="results/reconstructions/{subject}.ply",
        code=code("watertight"),
    params:
        back=config["watertight"].get("back_offset_mm", 10.0),
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/watertight/{subject}.tsv"
    log:
        "results/logs/watertight/{subject}.log",
    shell:
        "facecover watertight --mesh {input.healthy} --back-offset-mm {params.back}"
        " --out {output.mesh} --report {output.report} 2> {log}"


rule filling:
    output:
        mesh="results/fillings/{subject}.ply",
        report="results/fillings/{subject}.json",
        footprint="results/fillings/{subject}_footprint.npz",
    input:
        injured=injured_mesh,
        healthy="results/watertight/{subject}.ply",
        wound="results/reconstructions/{subject}_wound.npz",
        space="results/model/face_space.npz",
        code=code("filling"),
    params:
        settings=settings_json("filling"),
        wound=wound_arg,
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/filling/{subject}.tsv"
    log:
        "results/logs/filling/{subject}.log",
    shell:
        "facecover filling --injured {input.injured} --healthy {input.healthy} {params.wound} --space {input.space}"
        " --settings {params.settings:q} --out {output.mesh} --report {output.report}"
        " --out-footprint {output.footprint} 2> {log}"


rule print:
    output:
        stl="results/prints/{subject}.stl",
        face="results/prints/{subject}_face.stl",
        ini="results/prints/{subject}.ini",
        report="results/prints/{subject}.json",
        gcode=["results/prints/{subject}.gcode"] if COVER_GCODE else [],
        mould=["results/prints/{subject}_mould.stl"] if MOULD else [],
        mould_gcode=["results/prints/{subject}_mould.gcode"] if MOULD and GCODE else [],
    input:
        filling="results/fillings/{subject}.ply",
        sides="results/fillings/{subject}_footprint.npz",
        injured=injured_mesh,
        about="results/reconstructions/{subject}.json",
        code=code("printing", "orientation", "mould", "watertight"),
    params:
        printer=settings_json("printer", "gcode"),
        thickness=config["filling"].get("min_thickness_mm", 1.0),
        gcode=lambda wildcards, output: f"--out-gcode {output.gcode}" if COVER_GCODE else "",
        mould=mould_args,
        about=about_arg,
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/print/{subject}.tsv"
    log:
        "results/logs/print/{subject}.log",
    shell:
        "facecover print --filling {input.filling} --sides {input.sides} --injured {input.injured}"
        " --printer {params.printer:q}"
        " --min-thickness-mm {params.thickness} {params.about} --out-stl {output.stl} --out-face-stl {output.face}"
        " --out-ini {output.ini} --out-json {output.report} {params.gcode} {params.mould} 2> {log}"


rule preview:
    output:
        still=report(
            "results/report/covers/{subject}.png",
            caption="../report/preview.rst",
            category="Covers",
            subcategory="from the reconstruction",
            labels={"subject": "{subject}", "view": "still"},
        ),
        interactive=report(
            "results/report/covers/{subject}.html",
            caption="../report/preview_3d.rst",
            category="Covers",
            subcategory="from the reconstruction",
            labels={"subject": "{subject}", "view": "3D (rotate, zoom)"},
        ),
        gap=report(
            "results/report/covers/{subject}_gap.png",
            caption="../report/gap.rst",
            category="Covers",
            subcategory="from the reconstruction",
            labels={"subject": "{subject}", "view": "gap map"},
        ),
    input:
        filling="results/fillings/{subject}.ply",
        sides="results/fillings/{subject}_footprint.npz",
        wound="results/reconstructions/{subject}_wound.npz",
        injured=injured_mesh,
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/preview/{subject}.tsv"
    log:
        "results/logs/preview/{subject}.log",
    shell:
        "facecover preview --injured {input.injured} --filling {input.filling} --title {wildcards.subject}"
        " --sides {input.sides} --wound {input.wound} --out {output.still} --out-html {output.interactive} --out-gap {output.gap} 2> {log}"


use rule watertight as reference_watertight with:
    output:
        mesh=f"{REF}/watertight/{{subject}}.ply",
        report=f"{REF}/watertight/{{subject}}.json",
    input:
        healthy="results/registered/{subject}.ply",
        code=code("watertight"),
    benchmark:
        "results/benchmarks/reference_watertight/{subject}.tsv"
    log:
        "results/logs/reference_watertight/{subject}.log",


use rule filling as reference_filling with:
    output:
        mesh=f"{REF}/fillings/{{subject}}.ply",
        report=f"{REF}/fillings/{{subject}}.json",
        footprint=f"{REF}/fillings/{{subject}}_footprint.npz",
    input:
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
        healthy=f"{REF}/watertight/{{subject}}.ply",
        space="results/model/face_space.npz",
        code=code("filling"),
    benchmark:
        "results/benchmarks/reference_filling/{subject}.tsv"
    log:
        "results/logs/reference_filling/{subject}.log",


use rule print as reference_print with:
    output:
        stl=f"{REF}/prints/{{subject}}.stl",
        face=f"{REF}/prints/{{subject}}_face.stl",
        ini=f"{REF}/prints/{{subject}}.ini",
        report=f"{REF}/prints/{{subject}}.json",
        gcode=[f"{REF}/prints/{{subject}}.gcode"] if COVER_GCODE else [],
        mould=[f"{REF}/prints/{{subject}}_mould.stl"] if MOULD else [],
        mould_gcode=[f"{REF}/prints/{{subject}}_mould.gcode"] if MOULD and GCODE else [],
    input:
        filling=f"{REF}/fillings/{{subject}}.ply",
        sides=f"{REF}/fillings/{{subject}}_footprint.npz",
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
        code=code("printing", "orientation", "mould", "watertight"),
    benchmark:
        "results/benchmarks/reference_print/{subject}.tsv"
    log:
        "results/logs/reference_print/{subject}.log",


rule reference_preview:
    output:
        report(
            "results/report/covers_reference/{subject}.png",
            caption="../report/preview_reference.rst",
            category="Covers",
            subcategory="reference (true healthy face)",
            labels={"subject": "{subject}"},
        ),
    input:
        filling=f"{REF}/fillings/{{subject}}.ply",
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
    conda:
        "../../envs/covers.yaml"
    benchmark:
        "results/benchmarks/reference_preview/{subject}.tsv"
    log:
        "results/logs/reference_preview/{subject}.log",
    shell:
        "facecover preview --injured {input.injured} --filling {input.filling} --out {output} 2> {log}"
