# From meshes to print: watertight healthy face, cover solid, checked STL + profile + G-code, preview.
# For now the healthy face is each subject's true registered mesh: the *reference* cover.

import shutil

GCODE = config["printer"].get("gcode", "auto") == "always" or (
    config["printer"].get("gcode", "auto") == "auto" and shutil.which("prusa-slicer") is not None
)
REF = "results/covers_reference"


rule reference_watertight:
    output:
        mesh=f"{REF}/watertight/{{subject}}.ply",
        report=f"{REF}/watertight/{{subject}}.json",
    input:
        healthy="results/registered/{subject}.ply",
        code=code("watertight"),
    params:
        back=config["watertight"].get("back_offset_mm", 10.0),
    conda:
        "../../envs/covers.yaml"
    log:
        "results/logs/reference_watertight/{subject}.log",
    shell:
        "facecover watertight --mesh {input.healthy} --back-offset-mm {params.back}"
        " --out {output.mesh} --report {output.report} 2> {log}"


rule reference_filling:
    output:
        mesh=f"{REF}/fillings/{{subject}}.ply",
        report=f"{REF}/fillings/{{subject}}.json",
    input:
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
        healthy=f"{REF}/watertight/{{subject}}.ply",
        code=code("filling"),
    params:
        settings=settings_json("filling"),
    conda:
        "../../envs/covers.yaml"
    log:
        "results/logs/reference_filling/{subject}.log",
    shell:
        "facecover filling --injured {input.injured} --healthy {input.healthy} --settings {params.settings:q}"
        " --out {output.mesh} --report {output.report} 2> {log}"


rule reference_print:
    output:
        stl=f"{REF}/prints/{{subject}}.stl",
        face=f"{REF}/prints/{{subject}}_face.stl",
        ini=f"{REF}/prints/{{subject}}.ini",
        report=f"{REF}/prints/{{subject}}.json",
        gcode=[f"{REF}/prints/{{subject}}.gcode"] if GCODE else [],
    input:
        filling=f"{REF}/fillings/{{subject}}.ply",
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
        code=code("printing", "watertight"),
    params:
        printer=settings_json("printer", "gcode"),
        thickness=config["filling"].get("min_thickness_mm", 1.0),
        gcode=lambda wildcards, output: f"--out-gcode {output.gcode}" if GCODE else "",
    conda:
        "../../envs/covers.yaml"
    log:
        "results/logs/reference_print/{subject}.log",
    shell:
        "facecover print --filling {input.filling} --injured {input.injured} --printer {params.printer:q}"
        " --min-thickness-mm {params.thickness} --out-stl {output.stl} --out-face-stl {output.face}"
        " --out-ini {output.ini} --out-json {output.report} {params.gcode} 2> {log}"


rule reference_preview:
    output:
        report(
            "results/report/covers_reference/{subject}.png",
            caption="../report/preview.rst",
            category="Covers",
            labels={"subject": "{subject}"},
        ),
    input:
        filling=f"{REF}/fillings/{{subject}}.ply",
        injured=f"results/scars/{{subject}}/{config['patient_variant']}.ply",
    conda:
        "../../envs/covers.yaml"
    log:
        "results/logs/reference_preview/{subject}.log",
    shell:
        "facecover preview --injured {input.injured} --filling {input.filling} --out {output} 2> {log}"
