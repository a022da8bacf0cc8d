"""Write the uniform average of the weights of several model files of one architecture (a "model soup",
Wortsman et al. 2022), e.g. two runs continued from the same shipped weights with different seeds, so that
``select_checkpoint.py`` can score the average beside the runs themselves.

    python -m scripts.training.average_models runs/s14/rgbS/photo-rgb-S runs/s14/rgbS2/photo-rgb-S runs/s14/soup/photo-rgb-S --half

The card is the first model's; its ``training`` records the sources in ``weights_from``.
"""

from __future__ import annotations

import argparse

import torch

from scripts.training.checkpoint_to_model import save_candidate

from napari_gama_ir import load_model


def average_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The element-wise mean of state dicts with the same keys and shapes (float32 for floating tensors)."""
    keys = list(states[0])
    if any(list(s) != keys or any(s[k].shape != states[0][k].shape for k in keys) for s in states[1:]):
        raise ValueError("the models do not share one architecture (their weight names or shapes differ)")
    out = {}
    for k in keys:
        if states[0][k].is_floating_point():
            out[k] = torch.stack([s[k].float() for s in states]).mean(0)
        else:
            out[k] = states[0][k]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser()
    p.add_argument("models", nargs="+", help="two or more model paths (stems), then the output path")
    p.add_argument("--half", action="store_true", help="store the weights as float16, as train_shipped.py --half does")
    args = p.parse_args(argv)
    *sources, out = args.models
    if len(sources) < 2:
        p.error("give at least two models to average and an output path")
    nets = [load_model(s).float() for s in sources]
    net = nets[0]
    net.load_state_dict(average_state([n.state_dict() for n in nets]))
    save_candidate(net, out, half=args.half,
                   weights_note=f"the weights are the uniform average of {', '.join(sources)} (scripts.training.average_models); "
                                "the rest of the card describes the first of them")  # fmt: skip
    print(f"wrote {out}: the average of {len(sources)} models")


if __name__ == "__main__":
    main()
