# Scar simulation and rendering.

VARIANTS = [f"{i:02d}" for i in range(config["scars"]["variants_per_subject"])]
VIEWS = [str(k) for k in range(config["render"]["views"])]
RENDER_STEMS = [f"{variant}_{view}" for variant in VARIANTS for view in VIEWS]
VIEW_SETTINGS = settings_json("render")


rule scars:
    output:
        meshes=expand("results/scars/{{subject}}/{variant}.ply", variant=VARIANTS),
        masks=expand("results/scars/{{subject}}/{variant}.npz", variant=VARIANTS),
    input:
        space="results/model/face_space.npz",
        registered="results/registered/{subject}.ply",
        code=code("scars", "template"),
    params:
        settings=settings_json("scars", "variants_per_subject"),
        variants=" ".join(VARIANTS),
        seed=config["seed"],
    conda:
        "../../envs/render.yaml"
    benchmark:
        "results/benchmarks/scars/{subject}.tsv"
    log:
        "results/logs/scars/{subject}.log",
    shell:
        "facecover scars --space {input.space} --registered {input.registered} --subject {wildcards.subject}"
        " --seed {params.seed} --variants {params.variants} --settings {params.settings:q}"
        " --out-dir results/scars/{wildcards.subject} 2> {log}"


rule render:
    output:
        images=expand("results/renders/{{subject}}/{stem}.png", stem=RENDER_STEMS),
        landmarks=expand("results/renders/{{subject}}/{stem}.json", stem=RENDER_STEMS),
    input:
        space="results/model/face_space.npz",
        meshes=expand("results/scars/{{subject}}/{variant}.ply", variant=VARIANTS),
        code=code("render", "cohort", "template"),
    params:
        settings=VIEW_SETTINGS,
        variants=" ".join(VARIANTS),
        seed=config["seed"],
    conda:
        "../../envs/render.yaml"
    benchmark:
        "results/benchmarks/render/{subject}.tsv"
    log:
        "results/logs/render/{subject}.log",
    shell:
        "facecover render --space {input.space} --scars-dir results/scars/{wildcards.subject}"
        " --subject {wildcards.subject} --variants {params.variants} --settings {params.settings:q} --seed {params.seed}"
        " --out-dir results/renders/{wildcards.subject} 2> {log}"


rule render_pool:
    output:
        directory("results/renders/pool"),
    input:
        space="results/model/face_space.npz",
        pool="results/pool/identities.npz",
        code=code("render", "cohort", "template"),
    params:
        settings=VIEW_SETTINGS,
        seed=config["seed"],
    conda:
        "../../envs/render.yaml"
    benchmark:
        "results/benchmarks/render_pool/render_pool.tsv"
    log:
        "results/logs/render_pool.log",
    shell:
        "facecover render-pool --space {input.space} --pool {input.pool} --settings {params.settings:q} --seed {params.seed}"
        " --out-dir {output} 2> {log}"


rule contact_sheet:
    output:
        report(
            "results/report/renders/{subject}.png",
            caption="../report/contact_sheet.rst",
            category="Renders",
            labels={"subject": "{subject}"},
        ),
    input:
        images=expand("results/renders/{{subject}}/{stem}.png", stem=RENDER_STEMS),
        masks=expand("results/scars/{{subject}}/{variant}.npz", variant=VARIANTS),
    params:
        variants=" ".join(VARIANTS),
    conda:
        "../../envs/render.yaml"
    benchmark:
        "results/benchmarks/contact_sheet/{subject}.tsv"
    log:
        "results/logs/contact_sheet/{subject}.log",
    shell:
        "facecover contact-sheet --renders-dir results/renders/{wildcards.subject}"
        " --scars-dir results/scars/{wildcards.subject} --variants {params.variants} --out {output} 2> {log}"
