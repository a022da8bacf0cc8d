"""Write a training checkpoint's model weights as a model file (safetensors + card), so that
``select_checkpoint.py`` can score it beside the run's own output.

    python -m scripts.training.checkpoint_to_model runs/s9/pgE-ckpt runs/s9/pgE/photo-gray runs/s9/pgE-last/photo-gray

The card is taken from the run's output model (``CARD_FROM``): the checkpoint holds the weights, the
optimiser state and the step, and the run's card describes the whole run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from napari_gama_ir import load_model
from napari_gama_ir.training.checkpoint import load_checkpoint, model_state
from napari_gama_ir.zoo.store import save_model


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("checkpoint", help="checkpoint stem (the --checkpoint of train_shipped.py)")
    p.add_argument("card_from", help="the run's output model, whose card and architecture are used")
    p.add_argument("out", help="model path to write (stem; .safetensors and .json)")
    p.add_argument("--half", action="store_true", help="store the weights as float16, as train_shipped.py --half does")
    args = p.parse_args(argv)
    tensors, meta = load_checkpoint(args.checkpoint)
    net = load_model(args.card_from)
    net.load_state_dict(model_state(tensors))
    save_candidate(net, args.out, half=args.half,
                   weights_note=f"the weights are the checkpoint {args.checkpoint} at step {meta.get('step')}, written as a "
                                "model file by scripts.training.checkpoint_to_model; the rest of the card describes the whole run")  # fmt: skip
    print(f"wrote {args.out} from {args.checkpoint} (step {meta.get('step')})")


def save_candidate(net, out: str, *, half: bool, weights_note: str) -> None:
    """Save ``net`` as a candidate model file whose card says where its weights came from
    (``training.weights_from``); ``half`` stores
    them as float16, as train_shipped.py --half does."""
    training = {k: v for k, v in net.card.training.items() if k != "weights_dtype"}
    if half:
        net.half()
        training["weights_dtype"] = "float16"
    training["weights_from"] = weights_note
    net.card = net.card.replace(training=training)
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    save_model(net, out)


if __name__ == "__main__":
    main()
