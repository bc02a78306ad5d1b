# Identity encoder (frozen ArcFace) and the embedding cache of every render
# (results/embeddings/{renders}.npz for each subject's injured renders and for the pool).

import shlex

ARCFACE = config["arcface"]
AUGMENT_SETTINGS = settings_json("embed", "augmentations")


rule encoder:
    output:
        model="results/encoder/arcface.onnx",
        report="results/encoder/arcface.json",
    input:
        unpack(encoder_inputs),
        code=code("encoder", "device"),
    params:
        source=f"--model {shlex.quote(ARCFACE['model'])}" if ARCFACE["model"] else "--renders-dir results/renders/pool",
        settings=settings_json("arcface", "model"),
        augment=AUGMENT_SETTINGS,
        seed=config["seed"],
        device=config["device"],
    # torch training threads: the weights depend on their number, so the same count gives the same encoder
    # on any machine; training is bound by one Python thread (the augmentation): 1 took 62 s, 2 took 67 s
    threads: 1
    resources:
        gpu=GPUS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/encoder/encoder.tsv"
    log:
        "results/logs/encoder.log",
    shell:
        "facecover encoder {params.source} --settings {params.settings:q} --augment {params.augment:q}"
        " --seed {params.seed} --device {params.device} --threads {threads} --out {output.model} --report {output.report} 2> {log}"


rule embed:
    output:
        "results/embeddings/{renders}.npz",
    input:
        unpack(renders_to_embed),
        encoder="results/encoder/arcface.onnx",
        code=code("embed", "encoder", "device", "cohort"),
    params:
        stems=embed_stems,
        augmentations=config["embed"]["augmentations"],
        augment=AUGMENT_SETTINGS,
        seed=config["seed"],
        device=config["device"],
    resources:
        gpu=GPUS,
    conda:
        "../../envs/learn.yaml"
    benchmark:
        "results/benchmarks/embed/{renders}.tsv"
    log:
        "results/logs/embed/{renders}.log",
    shell:
        "facecover embed --encoder {input.encoder} --renders-dir results/renders/{wildcards.renders} {params.stems}"
        " --augmentations {params.augmentations} --augment {params.augment:q} --seed {params.seed}"
        " --device {params.device} --threads {threads} --out {output} 2> {log}"
