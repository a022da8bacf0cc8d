"""GAMA-IR: Global Additive Multidimensional Averaging for fast image restoration.

Y. Mansour, R. Heckel, "GAMA-IR: Global Additive Multidimensional Averaging for Fast Image
Restoration", arXiv 2404.00807. No official code exists; this file follows what is known of it.

- [paper]   a shallow U-shaped encoder-decoder built for low latency and memory.
- [summary] the GAMA unit: means over C, H and W; the H- and W-means transposed into one-channel
            2-D maps; a Conv2d(1, 1, 7) on each of the three maps; the results broadcast and added.
            Additive skips, 1x1 down/upsampling, global residual.
- [default] the building block is NAFNet's (Chen et al., arXiv 2204.04676) with GAMA in place of its
            simplified channel attention; down = 1x1 conv c->c/2 + PixelUnshuffle(2), up = 1x1 conv
            c->2c + PixelShuffle(2); bias in the GAMA convs, nothing else inside GAMA.
- [ours]    ``mean_mode="local"`` replaces the global means by box means of ``local_size`` input pixels
            (NAFNet's TLC idea, Chu et al., arXiv 2112.04491), which makes the receptive field finite.
- [ours]    faster kernels for the same arithmetic (to float rounding): GAMA's means as matrix products
            on channels-last memory (training too); without gradients also 1x1 convolutions on oneDNN
            with the residual added in the kernel and GAMA's maps added in place.
"""

from __future__ import annotations

import contextlib
import threading

import torch
import torch.nn.functional as F
from torch import nn

MEAN_MODES = ("global", "local")  # GAMA's means: over the whole image, or over boxes of local_size pixels

GPU_CHANNELS_LAST = False  # NCHW activations on a GPU: faster there (benchmarks.md); the CPU always uses channels-last


_EXPORT = threading.local()  # export_mode() of this thread; other threads keep their fast paths


@contextlib.contextmanager
def export_mode():
    """Run the network with portable operators only, for tracing to TorchScript and ONNX in this thread.

    The same arithmetic as the default path (to float rounding): NCHW memory, no oneDNN-only kernels, no
    in-place updates, GAMA's maps from size-free reshapes, local means without the whole-axis shortcut,
    and no padding or cropping in :meth:`GAMAIR.forward` (input sizes must be multiples of
    ``2 ** levels``; the exported packages say so). Only this thread is affected; this file stays
    self-contained (torch only), as it is the BioImage.IO package's architecture source.
    """
    previous = getattr(_EXPORT, "on", False)
    _EXPORT.on = True
    try:
        yield
    finally:
        _EXPORT.on = previous


def _exporting() -> bool:
    return getattr(_EXPORT, "on", False)


def _use_channels_last(device: torch.device) -> bool:
    return (device.type == "cpu" or GPU_CHANNELS_LAST) and not _exporting()


def _as_dtype(x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """``x`` in ``dtype``, a layer's weight dtype (under autocast, as it is: autocast casts)."""
    return x if x.dtype == dtype or _autocast_enabled(x.device.type) else x.to(dtype)


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of a B x C x H x W tensor, with a per-channel affine."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if _exporting() or not x.is_contiguous(memory_format=torch.channels_last):  # NCHW memory (GPU_CHANNELS_LAST)
            mu = x.mean(1, keepdim=True)
            var = (x - mu).pow(2).mean(1, keepdim=True)
            return (x - mu) * torch.rsqrt(var + self.eps) * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        # One fused kernel over the channel axis. Its statistics as GEMVs (faster alone on a busy core)
        # made the whole network 3-10 % slower on 2 threads (benchmarks.md), so this stays.
        y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)


def _mkldnn_pointwise_available() -> bool:
    try:
        return torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    except (AttributeError, RuntimeError):
        return False


_MKLDNN_POINTWISE = _mkldnn_pointwise_available()


def _mkldnn_bf16_native() -> bool:
    try:
        return _MKLDNN_POINTWISE and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


# bf16: a network cast to bf16 (CPU bf16 inference, not autocast), where oneDNN runs bf16 natively
_POINTWISE_DTYPES = (torch.float32, torch.bfloat16) if _mkldnn_bf16_native() else (torch.float32,)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4 takes no device argument
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


def _needs_grad(*tensors: torch.Tensor | None) -> bool:
    """True when autograd must see these tensors' operations (the fast paths have no backward)."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


class PointwiseConv(nn.Conv2d):
    """A 1x1 convolution that, in CPU inference in fp32 (or with bf16 weights), always runs oneDNN's kernel
    and can add a residual in the same kernel.

    PyTorch sends a 1x1 fp32 convolution with a batch under 16 on one thread to its generic
    im2col/GEMM path; on channels-last activations oneDNN is 2-6x faster there (benchmarks.md, "Where the
    time goes"), and in bf16 the residual added in the kernel is 8x faster than a separate broadcast
    ``addcmul``. Training, autocast and other devices use ``F.conv2d`` unchanged; the weights and their
    names are those of ``nn.Conv2d``.
    """

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(in_channels, out_channels, 1)

    def _fast(self, x: torch.Tensor, *others: torch.Tensor) -> bool:
        return (
            _MKLDNN_POINTWISE and not _exporting() and x.device.type == "cpu" and x.dtype in _POINTWISE_DTYPES and self.weight.dtype == x.dtype
            and not _needs_grad(x, self.weight, self.bias, *others) and not _autocast_enabled("cpu")
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._fast(x):
            return torch.ops.mkldnn._convolution_pointwise(x, self.weight, self.bias, [0, 0], [1, 1], [1, 1], 1, "none", [], "")
        return super().forward(x)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
        """``residual + scale * conv(x)``, with ``scale`` (1 x C x 1 x 1) per output channel."""
        if self._fast(x, residual, scale) and residual.dtype == x.dtype and residual.shape[1] == self.out_channels:
            weight = self.weight * scale.view(-1, 1, 1, 1)  # scale folded into the weights: one kernel, one pass
            bias = self.bias * scale.view(-1)
            return torch.ops.mkldnn._convolution_pointwise.binary(
                x, residual, weight, bias, [0, 0], [1, 1], [1, 1], 1, "add", None, None, [], None
            )
        return torch.addcmul(residual, scale, super().forward(x))  # one pass, also across dtypes (autocast)


class SimpleGate(nn.Module):
    """Split the channels in two halves and multiply them (NAFNet's nonlinearity)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a, b = x.chunk(2, dim=1)
        return a * b


def _box_mean(x: torch.Tensor, dim: int, size: int) -> torch.Tensor:
    """Mean over a centred window of ``size`` along ``dim`` (shrinking at the borders)."""
    n = x.shape[dim]
    if size >= 2 * n - 1 and not _exporting():  # every window covers the whole axis (traced: sizes vary)
        return x.mean(dim, keepdim=True).expand_as(x)
    half = size // 2
    last = x.dim() - 1
    if _exporting():  # ONNX takes no negative axes in movedim's permutation; a swap there and back is the same
        csum = F.pad(x.transpose(dim % x.dim(), last).cumsum(-1), (1, 0))
    else:
        csum = F.pad(x.movedim(dim, -1).cumsum(-1), (1, 0))
    idx = torch.arange(n, device=x.device)
    hi = (idx + half + 1).clamp(max=n)
    lo = (idx - half).clamp(min=0)
    out = (csum[..., hi] - csum[..., lo]) / (hi - lo).to(x.dtype)
    return out.transpose(dim % x.dim(), last) if _exporting() else out.movedim(-1, dim)


class GAMA(nn.Module):
    """Global Additive Multidimensional Averaging: 150 parameters, a global receptive field.

    Parameters
    ----------
    kernel_size : int
        Size of the three 1-in/1-out convolutions on the mean maps (7 in the paper).
    mean_mode : {"global", "local"}
        "global" averages over the whole H and W (the paper); "local" over a centred box of
        ``local_size`` pixels, so that a tile sees the same statistics as the whole image.
    local_size : int
        Box size along H and W in this block's own pixels, used when ``mean_mode="local"``.
    """

    def __init__(self, kernel_size: int = 7, mean_mode: str = "global", local_size: int = 96) -> None:
        super().__init__()
        if mean_mode not in MEAN_MODES:
            raise ValueError(f"mean_mode must be 'global' or 'local', got {mean_mode!r}")
        pad = kernel_size // 2
        self.conv_c = nn.Conv2d(1, 1, kernel_size, padding=pad)  # on the H x W map of the C-mean
        self.conv_h = nn.Conv2d(1, 1, kernel_size, padding=pad)  # on the C x W map of the H-mean
        self.conv_w = nn.Conv2d(1, 1, kernel_size, padding=pad)  # on the H x C map of the W-mean
        self.mean_mode = mean_mode
        self.local_size = int(local_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f_c, f_h, f_w = self.terms(x)
        return x + f_c + f_h + f_w

    def terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The three maps that :meth:`forward` adds to ``x``: B x 1 x H x W, B x C x 1 x W (or the full
        shape in "local" mode) and B x C x H x 1 (or full)."""
        if _exporting():
            return self._portable_terms(x)
        b, c, h, w = x.shape
        if self.mean_mode == "global" and x.is_contiguous(memory_format=torch.channels_last):
            return self._channels_last_terms(x)
        f_c = self.conv_c(x.mean(1, keepdim=True))  # B x 1 x H x W
        if self.mean_mode == "global":
            mean_h = x.mean(2)  # B x C x W, a one-channel C x W map
            f_h = self.conv_h(mean_h[:, None]).view(b, c, 1, w)
            mean_w = x.mean(3).transpose(1, 2)  # B x H x C, a one-channel H x C map
            f_w = self.conv_w(mean_w[:, None]).view(b, h, c).transpose(1, 2)[..., None]
        else:
            # One C x W map per row (and one H x C map per column) of local means.
            mean_h = _box_mean(x, 2, self.local_size)  # B x C x H x W
            f_h = self.conv_h(mean_h.permute(0, 2, 1, 3).reshape(b * h, 1, c, w))
            f_h = f_h.view(b, h, c, w).permute(0, 2, 1, 3)
            mean_w = _box_mean(x, 3, self.local_size)
            f_w = self.conv_w(mean_w.permute(0, 3, 2, 1).reshape(b * w, 1, h, c))
            f_w = f_w.view(b, w, h, c).permute(0, 3, 2, 1)
        return f_c, f_h, f_w

    def _portable_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`terms` in export mode: the same maps from reshapes that name no sizes (traced graphs then
        take any H and W)."""
        f_c = self.conv_c(x.mean(1, keepdim=True))  # B x 1 x H x W
        if self.mean_mode == "global":
            f_h = self.conv_h(x.mean(2).unsqueeze(1)).transpose(1, 2)  # C x W map -> B x C x 1 x W
            f_w = self.conv_w(x.mean(3).transpose(1, 2).unsqueeze(1)).permute(0, 3, 2, 1)  # H x C map -> B x C x H x 1
            return f_c, f_h, f_w
        # one C x W map per row (one H x C map per column): a 3-D convolution with a 1 x k x k kernel
        mean_h = _box_mean(x, 2, self.local_size).permute(0, 2, 1, 3).unsqueeze(1)  # B x 1 x H x C x W
        f_h = self._per_slice(self.conv_h, mean_h).permute(0, 2, 1, 3)
        mean_w = _box_mean(x, 3, self.local_size).permute(0, 3, 2, 1).unsqueeze(1)  # B x 1 x W x H x C
        f_w = self._per_slice(self.conv_w, mean_w).permute(0, 3, 2, 1)
        return f_c, f_h, f_w

    @staticmethod
    def _per_slice(conv: nn.Conv2d, maps: torch.Tensor) -> torch.Tensor:
        """``conv`` on each 2-D slice of B x 1 x N x P x Q maps, as B x N x P x Q."""
        pad = conv.padding[0]
        return F.conv3d(maps, conv.weight.unsqueeze(2), conv.bias, padding=(0, pad, pad)).squeeze(1)

    def add_terms_(self, x: torch.Tensor) -> torch.Tensor:
        """``x += f_c + f_h + f_w`` in place (inference only), returning ``x``.

        On the CPU, on channels-last memory in bf16/fp16, each term is added as a rank-1 matrix update: a broadcast
        ``add_`` whose innermost stride is 0 is not vectorised for those types on the CPU and costs 12-15x
        more (benchmarks.md, "Where the time goes").
        """
        f_c, f_h, f_w = self.terms(x)
        cpu_half = x.device.type == "cpu" and x.dtype != torch.float32  # a GPU vectorises the broadcast itself
        if not cpu_half or not x.is_contiguous(memory_format=torch.channels_last) or self.mean_mode != "global":
            return x.add_(f_c).add_(f_h).add_(f_w)
        b, c, h, w = x.shape
        f_c, f_h, f_w = (f.to(x.dtype) for f in (f_c, f_h, f_w))  # no-ops unless autocast mixed the types
        nhwc = x.permute(0, 2, 3, 1)  # views of x's own memory: the updates write into x
        ones = torch.ones(max(c, h, w), 1, dtype=x.dtype, device=x.device)
        nhwc.reshape(b * h * w, c).addmm_(f_c.reshape(b * h * w, 1), ones[:c].T)
        nhwc.reshape(b, h, w * c).baddbmm_(ones[:h].expand(b, h, 1), f_h.permute(0, 2, 3, 1).reshape(b, 1, w * c))
        nhwc.reshape(b * h, w, c).baddbmm_(ones[:w].expand(b * h, w, 1), f_w.permute(0, 2, 3, 1).reshape(b * h, 1, c))
        return x

    def _channels_last_terms(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """:meth:`terms` for activations in channels-last memory (as ``GAMAIR`` keeps them).

        The means are matrix products with a vector of 1/n: on channels-last memory ``x.mean(2)`` and
        ``x.mean(3)`` are strided reductions 7-35x slower than the GEMV on the CPU (benchmarks.md, "Where
        the time goes"). The H and W terms come out in the same memory order as ``x``, so adding them is
        a vectorised broadcast.
        """
        b, c, h, w = x.shape
        nhwc = x.permute(0, 2, 3, 1)  # a view: B x H x W x C, contiguous

        def averager(n: int, column: bool = False) -> torch.Tensor:
            shape = (n, 1) if column else (1, n)
            return torch.full(shape, 1.0 / n, dtype=x.dtype, device=x.device)

        mean_c = (nhwc.reshape(b, h * w, c) @ averager(c, column=True)).view(b, 1, h, w)
        mean_h = (averager(h) @ nhwc.reshape(b, h, w * c)).view(b, 1, w, c)  # B x W x C
        mean_w = (averager(w) @ nhwc.reshape(b * h, w, c)).view(b, 1, h, c)  # B x H x C, the H x C map
        f_c = self.conv_c(mean_c)
        f_h = self.conv_h(mean_h.transpose(2, 3))  # on the C x W map; B x 1 x C x W
        f_h = f_h.view(b, c, w).transpose(1, 2).contiguous().view(b, 1, w, c).permute(0, 3, 1, 2)  # B x C x 1 x W
        f_w = self.conv_w(mean_w).view(b, h, 1, c).permute(0, 3, 1, 2)  # B x C x H x 1
        return f_c, f_h, f_w


class GAMABlock(nn.Module):
    """NAFNet's block with GAMA in place of simplified channel attention.

    Parameters
    ----------
    channels : int
        Channels in and out.
    expand : int
        Expansion of the 1x1 convs before each SimpleGate (2, as in NAFNet).
    use_gama : bool
        False replaces GAMA by ``nn.Identity()`` (for ablations and tests).
    kernel_size, mean_mode, local_size
        Passed to :class:`GAMA`.
    """

    def __init__(
        self,
        channels: int,
        expand: int = 2,
        use_gama: bool = True,
        kernel_size: int = 7,
        mean_mode: str = "global",
        local_size: int = 96,
    ) -> None:
        super().__init__()
        hidden = channels * expand
        self.norm1 = LayerNorm2d(channels)
        self.conv1 = PointwiseConv(channels, hidden)
        self.conv2 = nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden)  # depthwise
        self.gate = SimpleGate()
        self.gama = GAMA(kernel_size, mean_mode, local_size) if use_gama else nn.Identity()
        self.conv3 = PointwiseConv(hidden // 2, channels)
        self.norm2 = LayerNorm2d(channels)
        self.conv4 = PointwiseConv(channels, hidden)  # feed-forward half
        self.conv5 = PointwiseConv(hidden // 2, channels)
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))  # residual scales, start at 0
        self.gamma = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.gate(self.conv2(self.conv1(self.norm1(x))))
        if isinstance(self.gama, GAMA) and not _needs_grad(y, *self.gama.parameters()) and not _exporting():
            self.gama.add_terms_(y)  # inference: y is this block's own fresh tensor
        else:
            y = self.gama(y)
        x = self.conv3.add_to(x, y, self.beta)  # x + beta * conv3(y)
        y = self.gate(self.conv4(self.norm2(x)))
        return self.conv5.add_to(x, y, self.gamma)


class GAMAIR(nn.Module):
    """The U-shaped GAMA-IR network.

    Input and output are B x C x H x W float tensors, for any H and W (padded internally by reflection
    to a multiple of ``2 ** len(enc_blocks)`` and cropped back). The output is ``input + residual``
    when ``in_channels == out_channels``; with ``context`` it is ``mix of the planes + residual``. The
    layers run in their weights' dtype (:func:`~napari_gama_ir.engine.runtime.bf16_copy` keeps the first and
    last convolutions in float32 and the rest in bf16; activations are cast between them) and the output
    has the input's dtype, so the residual is added at the input's precision.

    Parameters
    ----------
    in_channels : int
        Channels of the input image (1 for grayscale, 3 for RGB).
    out_channels : int or None
        Channels of the output; None means ``in_channels``.
    width : int
        Channels at full resolution; doubled at each level down.
    enc_blocks : tuple of int
        Blocks per encoder level; its length is the number of levels.
    middle_blocks : int
        Blocks at the lowest resolution.
    dec_blocks : tuple of int
        Blocks per decoder level, lowest level last (same length as ``enc_blocks``).
    expand : int
        Channel expansion inside each block.
    kernel_size : int
        GAMA convolution size.
    use_gama : bool
        False builds the same network without GAMA units.
    mean_mode : {"global", "local"}
        GAMA mean mode (see :class:`GAMA`).
    local_size : int
        Box size in input pixels for ``mean_mode="local"``; divided by 2 at each level down.
    context : int
        Neighbouring planes on each side in the input (0: one plane). The input then holds planes
        z-context..z+context, each with ``out_channels`` channels (plane-major, ``in_channels ==
        out_channels * (2 * context + 1)``), and the global residual is a learned mix of the planes,
        ``sum_j plane_mix[j] * plane_j`` (``plane_mix``: 2 * context + 1 weights, 1 on the centre plane and
        0 elsewhere until trained, so that a new context model starts as the 2-D one).
    """

    def __init__(
        self,
        in_channels: int = 1,
        out_channels: int | None = None,
        width: int = 42,
        enc_blocks: tuple[int, ...] = (2, 2, 2, 2),
        middle_blocks: int = 2,
        dec_blocks: tuple[int, ...] = (2, 2, 2, 2),
        expand: int = 2,
        kernel_size: int = 7,
        use_gama: bool = True,
        mean_mode: str = "global",
        local_size: int = 192,
        context: int = 0,
    ) -> None:
        super().__init__()
        out_channels = in_channels if out_channels is None else out_channels
        if context and in_channels != out_channels * (2 * context + 1):
            raise ValueError(f"context {context} needs in_channels = out_channels * {2 * context + 1}, got {in_channels} and {out_channels}")
        self.context = context
        if context:
            self.plane_mix = nn.Parameter(F.one_hot(torch.tensor(context), 2 * context + 1).float())
        if len(enc_blocks) != len(dec_blocks):
            raise ValueError(f"enc_blocks and dec_blocks need the same length, got {enc_blocks} and {dec_blocks}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.levels = len(enc_blocks)

        def blocks(n: int, ch: int, level: int) -> nn.Sequential:
            size = max(1, local_size // 2**level)
            return nn.Sequential(*[GAMABlock(ch, expand, use_gama, kernel_size, mean_mode, size) for _ in range(n)])

        self.intro = nn.Conv2d(in_channels, width, 3, padding=1)
        self.encoders, self.downs = nn.ModuleList(), nn.ModuleList()
        ch = width
        for level, n in enumerate(enc_blocks):
            self.encoders.append(blocks(n, ch, level))
            self.downs.append(nn.Sequential(PointwiseConv(ch, ch // 2), nn.PixelUnshuffle(2)))
            ch *= 2
        self.middle = blocks(middle_blocks, ch, self.levels)
        self.ups, self.decoders = nn.ModuleList(), nn.ModuleList()
        for level, n in reversed(list(enumerate(dec_blocks))):
            self.ups.append(nn.Sequential(PointwiseConv(ch, ch * 2), nn.PixelShuffle(2)))
            ch //= 2
            self.decoders.append(blocks(n, ch, level))
        self.ending = nn.Conv2d(width, out_channels, 3, padding=1)

    def set_mean_mode(self, mean_mode: str, local_size: int | None = None) -> None:
        """Switch every GAMA unit to "global" or "local" means (``local_size`` in input pixels)."""
        for level_blocks, level in self._blocks_by_level():
            for block in level_blocks:
                if isinstance(block.gama, GAMA):
                    if mean_mode not in MEAN_MODES:
                        raise ValueError(f"mean_mode must be 'global' or 'local', got {mean_mode!r}")
                    block.gama.mean_mode = mean_mode
                    if local_size is not None:
                        block.gama.local_size = max(1, int(local_size) // 2**level)

    def _blocks_by_level(self):
        for level, enc in enumerate(self.encoders):
            yield enc, level
        yield self.middle, self.levels
        for i, dec in enumerate(self.decoders):
            yield dec, self.levels - 1 - i

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        h, w = inp.shape[-2:]
        x = inp if _exporting() else self._pad(inp)  # exported: sizes are multiples of 2 ** levels
        # channels-last memory: LayerNorm runs on contiguous channels and the convs take oneDNN's fast
        # path (S at 256x256 on one CPU thread: 1.08 s -> 0.76 s, see docs/benchmarks.md)
        feat = self.intro(_as_dtype(x, self.intro.weight.dtype))
        feat = _as_dtype(feat, self._body_dtype())  # bf16_copy: first and last layers in float32, the body in bf16
        if _use_channels_last(feat.device):
            feat = feat.contiguous(memory_format=torch.channels_last)
        skips = []
        for encoder, down in zip(self.encoders, self.downs):
            feat = encoder(feat)
            skips.append(feat)
            feat = down(feat)
        feat = self.middle(feat)
        for decoder, up, skip in zip(self.decoders, self.ups, reversed(skips)):
            feat = decoder(up(feat) + skip)  # additive skip
        out = self.ending(_as_dtype(feat, self.ending.weight.dtype)).to(x.dtype)  # the global residual in the input's precision
        if self.context:  # global residual: the learned mix of the planes (the centre plane until trained)
            c = self.out_channels
            out = out + sum(w * x[:, j * c : (j + 1) * c] for j, w in enumerate(self.plane_mix))
        elif self.in_channels == self.out_channels:
            out = out + x  # global residual
        return out if _exporting() else out[..., :h, :w]

    def _body_dtype(self) -> torch.dtype:
        """The dtype of the layers between ``intro`` and ``ending`` (their first weight's)."""
        for name, p in self.named_parameters():
            if not name.startswith(("intro.", "ending.", "plane_mix")):
                return p.dtype
        return self.intro.weight.dtype

    def _pad(self, x: torch.Tensor) -> torch.Tensor:
        m = 2**self.levels
        ph, pw = (-x.shape[-2]) % m, (-x.shape[-1]) % m
        if not (ph or pw):
            return x
        # reflect needs pad < size; fall back to replicate for tiny images
        mode = "reflect" if ph < x.shape[-2] and pw < x.shape[-1] else "replicate"
        return F.pad(x, (0, pw, 0, ph), mode=mode)


def percentile_bounds(x: torch.Tensor, low: float, high: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``low`` and ``high`` percentiles (0-100) of each image and channel of a B x C x H x W tensor, as
    B x C x 1 x 1 tensors, with numpy's default (linear) interpolation. Computed by sorting, so that traced
    TorchScript and ONNX graphs keep H and W free (``torch.quantile`` has a size limit and no ONNX export)."""
    flat = x.flatten(2)
    ordered = flat.sort(dim=-1).values
    last = torch.ones_like(flat[:1, :1]).sum(-1, keepdim=True) - 1  # H * W - 1, as a tensor while tracing
    bounds = []
    for q in (low, high):
        pos = last * (q / 100.0)
        below = pos.floor()
        frac = pos - below
        i0 = below.long().expand(flat.shape[0], flat.shape[1], 1)
        i1 = torch.minimum(i0 + 1, last.long().expand_as(i0))
        bounds.append((ordered.gather(-1, i0) * (1 - frac) + ordered.gather(-1, i1) * frac).unsqueeze(-1))
    return bounds[0], bounds[1]


class RawIntensityGAMAIR(GAMAIR):
    """:class:`GAMAIR` on raw intensities: the network of a BioImage.IO package, run outside this plugin.

    Each image and channel of the B x C x H x W float input is mapped to about [0, 1] by its own
    ``low_percentile`` and ``high_percentile`` (clipped to ``+-clip``), restored, and mapped back to the
    input's units: what ``restore`` does around the network with its ``Normalizer``, so the output is
    B x C x H x W in the input's intensity scale. A tiled run normalises each tile by its own percentiles.
    Same parameters and state-dict keys as :class:`GAMAIR`; needs ``in_channels == out_channels``.
    """

    def __init__(self, *args, low_percentile: float = 0.5, high_percentile: float = 99.9, clip: float = 1000.0,
                 eps: float = 1e-6, **kwargs):  # fmt: skip
        super().__init__(*args, **kwargs)
        if self.in_channels != self.out_channels:
            raise ValueError("RawIntensityGAMAIR needs as many output channels as input channels")
        self.low_percentile, self.high_percentile, self.clip, self.eps = low_percentile, high_percentile, clip, eps

    def forward(self, inp: torch.Tensor) -> torch.Tensor:
        low, high = percentile_bounds(inp, self.low_percentile, self.high_percentile)
        scale = high - low + self.eps
        restored = super().forward(((inp - low) / scale).clamp(-self.clip, self.clip))
        return low + scale * restored
