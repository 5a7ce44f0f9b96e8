"""``secateurs import``: a model trained elsewhere (torchvision, timm, your own code) as an
ordinary secateurs model directory."""

from __future__ import annotations

import argparse
import json

from secateurs.cli.options import add_options, job_from_args
from secateurs.cli.parser import add_command
from secateurs.errors import SecateursError

DESCRIPTION = """Build a model from torchvision, timm or your own code, load weights trained
elsewhere, check it on one image and write it as a secateurs model directory (model.safetensors +
manifest.json) that eval, measure, prune, spp, sgcnn, export and train --from all take. Nothing is
downloaded (weights come only from --weights) and no pickle runs code: .pt/.pth files are read
with torch.load(weights_only=True). Your own code (package.module:factory, a function or class
taking num_classes when --num-classes is given) is imported because you named it here; later
commands on the directory need `secateurs --allow-factory package.module:factory COMMAND ...`.

examples:
  secateurs import torchvision:resnet18 --weights resnet18.pth -o models/r18
  secateurs import timm:resnet18 --weights r18.safetensors --num-classes 10 \\
      --input-size 32 --data ../shared/data/cifar10 -o models/r18-cifar
  secateurs import mynets:build_net --weights net.pt --input-size 3 64 64 -o models/mine
  secateurs --allow-factory mynets:build_net prune models/mine --method l1 -o runs/mine-l1
"""


def add_parser(commands: argparse._SubParsersAction) -> None:
    from secateurs.importing import ImportJob

    parser = add_command(commands, "import", "import a model trained elsewhere", DESCRIPTION)
    add_options(parser, ImportJob)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from secateurs.importing import ImportJob, import_model
    from secateurs.measurement import count_cost
    from secateurs.store import save_model

    job = job_from_args(ImportJob, args)
    if job.out is None:
        raise SecateursError("import needs -o DIR, the model directory to write")
    imported = import_model(job)
    save_model(imported.model, job.out, imported.manifest)
    manifest, fit = imported.manifest, imported.fit
    cost = count_cost(imported.model, manifest.input_size)
    result = {
        "out": str(job.out),
        "architecture": manifest.architecture,
        "classes": len(manifest.classes),
        "input_size": manifest.input_size,
        "params": cost["params"],
        "macs": cost["macs"],
        "missing_keys": len(fit.missing) if fit else None,
        "unexpected_keys": len(fit.unexpected) if fit else None,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    size = "x".join(map(str, manifest.input_size))
    weights = (
        f"{result['missing_keys']} missing, {result['unexpected_keys']} unexpected keys"
        if fit
        else "untrained (no --weights)"
    )
    print(
        f"{manifest.architecture}: {cost['params'] / 1e6:.2f} M params, {cost['macs'] / 1e6:.1f} M "
        f"MACs, {len(manifest.classes)} classes, {size} inputs; {weights}  ->  {job.out}"
    )
    return 0
