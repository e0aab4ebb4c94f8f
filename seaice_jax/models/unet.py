"""U-Net of the AI4Arctic challenge baseline, in Flax NNX, with an optional ASPP bottleneck.

With `filters=(16, 32, 64, 64)` the layout is that of the official PyTorch baseline:

    encoder_blocks[0]   (3x3 conv, norm, ReLU) x 2 at full resolution       -> filters[0]
    encoder_blocks[i]   2x2 max-pool, block                                  -> filters[i]
    bridge              2x2 max-pool, block                                  -> filters[-1]
    aspp                (optional) ASPP on the bridge output                 -> aspp_channels
    decoder_blocks[j]   x2 up (align-corners bilinear), zero-pad to the skip, concat skip, block
    heads[name]         1x1 conv with bias on the last decoder output

Any input size works: max-pooling floors odd sizes and the decoder zero-pads the upsampled map
(centred, like the baseline's `expand_padding`) to its skip's size.

Feature maps that Grad-CAM may capture, by name (see `UNet.feature_layers()`):
`encoder_0..`, `bridge`, `aspp` (when present), `decoder_0..` (decoder_0 is the coarsest).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp
from flax import nnx

from seaice_jax.data.channels import NUM_CLASSES
from seaice_jax.models.aspp import ASPP, ConvNormReLU, conv_kernel_init
from seaice_jax.models.freeboard import FREEBOARD_HEADS, UNCERTAINTY_SUFFIX, finish_freeboard_outputs
from seaice_jax.models.point_context import TrackCorrection, window_means
from seaice_jax.models.upsample import Upsampled, pad_to_match

UPSAMPLES = ("bilinear", "transpose")


class ConvBlock(nnx.Module):
    """`convs_per_block` x (3x3 conv, norm, ReLU): `[B, H, W, Cin] -> [B, H, W, Cout]`."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        convs_per_block: int,
        norm: str,
        dtype: jnp.dtype,
        param_dtype: jnp.dtype,
        rngs: nnx.Rngs,
    ):
        self.layers = nnx.List([
            ConvNormReLU(
                in_features if index == 0 else out_features, out_features, kernel_size=3,
                norm=norm, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
            )
            for index in range(convs_per_block)
        ])

    def __call__(self, x: jax.Array | Sequence[jax.Array]) -> jax.Array:
        """x: an array or parts to concatenate along channels (see ConvNormReLU)."""
        for layer in self.layers:
            x = layer(x)
        return x


def max_pool_2x2(x: jax.Array) -> jax.Array:
    """2x2 max-pool, stride 2, odd sizes floored: `[B, H, W, C] -> [B, H//2, W//2, C]`.

    A reshape + max rather than reduce_window: its gradient is a select, not the
    select-and-scatter of reduce_window, and it fuses.
    """
    batch, height, width, channels = x.shape
    x = x[:, : height // 2 * 2, : width // 2 * 2]
    return x.reshape(batch, height // 2, 2, width // 2, 2, channels).max(axis=(2, 4))


class UNet(nnx.Module):
    """U-Net with named heads. `__call__(x: [B, H, W, C]) -> {head: logits}` (float32).

    A head of size 1 is squeezed to `[B, H, W]` (the ice logit, SIC regression); others give
    `[B, H, W, n]`. `model.train()` / `model.eval()` switch BatchNorm between batch statistics
    and running averages.
    """

    def __init__(
        self,
        in_channels: int,
        *,
        filters: Sequence[int] = (16, 32, 64, 64),
        convs_per_block: int = 2,
        norm: str = "batch",
        upsample: str = "bilinear",
        aspp_rates: Sequence[int] = (),
        aspp_channels: int | None = None,
        aspp_pool_window: int = 0,
        heads: Mapping[str, int],
        dtype: jnp.dtype = jnp.float32,
        param_dtype: jnp.dtype = jnp.float32,
        point_pairs: Sequence[tuple[str, int, int]] = (),
        point_context_px: Sequence[int] = (),
        rngs: nnx.Rngs,
    ):
        filters = tuple(int(f) for f in filters)
        if len(filters) < 1 or convs_per_block < 1:
            raise ValueError(f"UNet needs >= 1 filter level and conv per block, got {filters}, {convs_per_block}")
        if upsample not in UPSAMPLES:
            raise ValueError(f"unknown upsample {upsample!r}; expected one of {UPSAMPLES}")
        if not heads:
            raise ValueError("UNet needs at least one head")
        self.filters = filters
        self.upsample = upsample
        # Altimeter point inputs (kind, values channel, mask channel): the U-Net sees the SAR alone (the
        # point channels zeroed) and a TrackCorrection per kind corrects its freeboard head by the
        # residuals at the given points, made dense at these window half-sizes (models/point_context.py).
        self.point_pairs = tuple((str(k), int(a), int(b)) for k, a, b in point_pairs) if point_context_px else ()
        self.point_context_px = tuple(int(s) for s in point_context_px) if self.point_pairs else ()
        self.point_corrections = nnx.Dict({k: TrackCorrection(len(self.point_context_px), rngs=rngs)
                                           for k, _, _ in self.point_pairs})
        self.dtype = dtype
        self.head_sizes = {str(name): int(size) for name, size in heads.items()}
        block = dict(convs_per_block=convs_per_block, norm=norm, dtype=dtype, param_dtype=param_dtype, rngs=rngs)

        self.encoder_blocks = nnx.List([
            ConvBlock(in_channels if level == 0 else filters[level - 1], filters[level], **block)
            for level in range(len(filters))
        ])
        self.bridge = ConvBlock(filters[-1], filters[-1], **block)
        bottom_features = (aspp_channels or filters[-1]) if aspp_rates else filters[-1]
        self.aspp = nnx.data(
            ASPP(
                filters[-1], bottom_features, tuple(aspp_rates), aspp_pool_window,
                norm=norm, dtype=dtype, param_dtype=param_dtype, rngs=rngs,
            )
            if aspp_rates
            else None
        )

        # Decoder level j upsamples to encoder level len-1-j and concatenates that skip.
        decoder_blocks, upsamplers = [], []
        features_below = bottom_features
        for skip_features in reversed(filters):
            if upsample == "transpose":
                upsamplers.append(nnx.ConvTranspose(
                    features_below, features_below, (2, 2), strides=(2, 2), padding="VALID",
                    kernel_init=conv_kernel_init(gain=1.0),
                    dtype=dtype, param_dtype=param_dtype, rngs=rngs,
                ))
            decoder_blocks.append(ConvBlock(features_below + skip_features, skip_features, **block))
            features_below = skip_features
        self.decoder_blocks = nnx.List(decoder_blocks)
        self.upsamplers = nnx.List(upsamplers)
        self.heads = nnx.Dict({
            name: nnx.Conv(
                filters[0], size, (1, 1), use_bias=True, kernel_init=conv_kernel_init(gain=1.0),
                dtype=dtype, param_dtype=param_dtype, rngs=rngs,
            )
            for name, size in self.head_sizes.items()
        })

    def feature_layers(self) -> tuple[str, ...]:
        """Names accepted by `return_features` / `feature_offsets` (e.g. for Grad-CAM)."""
        names = [f"encoder_{level}" for level in range(len(self.filters))] + ["bridge"]
        if self.aspp is not None:
            names.append("aspp")
        return tuple(names + [f"decoder_{level}" for level in range(len(self.filters))])

    def __call__(
        self,
        x: jax.Array,
        *,
        return_features: Sequence[str] = (),
        feature_offsets: Mapping[str, jax.Array] | None = None,
    ) -> dict[str, jax.Array]:
        """x: [B, H, W, C] -> {head: [B, H, W] or [B, H, W, n] float32}.

        return_features: names from `feature_layers()`; each adds `'features/<name>'` (float32).
        feature_offsets: {name: array of that feature map's shape} added to the named feature map
            before it flows on. Pass zeros and differentiate w.r.t. them to get d(score)/d(feature)
            (Grad-CAM) without changing the forward pass.
        """
        unknown = (set(return_features) | set(feature_offsets or {})) - set(self.feature_layers())
        if unknown:
            raise ValueError(f"unknown feature names {sorted(unknown)}; known: {self.feature_layers()}")
        min_size = 2 ** len(self.filters)
        if min(x.shape[1], x.shape[2]) < min_size:
            raise ValueError(f"UNet input {x.shape[1]}x{x.shape[2]} is smaller than {min_size} (2^depth)")
        features: dict[str, jax.Array] = {}

        def tap(name: str, fmap: jax.Array) -> jax.Array:
            if feature_offsets is not None and name in feature_offsets:
                fmap = fmap + feature_offsets[name].astype(fmap.dtype)
            if name in return_features:
                features[f"features/{name}"] = fmap.astype(jnp.float32)
            return fmap

        if self.point_pairs:  # the U-Net's maps come from the SAR; the tracks correct them below
            x_in = x.at[..., [i for _, a, b in self.point_pairs for i in (a, b)]].set(0.0)
        else:
            x_in = x
        h = x_in.astype(self.dtype)
        skips = []
        for level, block in enumerate(self.encoder_blocks):
            if level > 0:
                h = max_pool_2x2(h)
            h = tap(f"encoder_{level}", block(h))
            skips.append(h)
        h = tap("bridge", self.bridge(max_pool_2x2(h)))
        if self.aspp is not None:
            h = tap("aspp", self.aspp(h))
        for level, (block, skip) in enumerate(zip(self.decoder_blocks, reversed(skips), strict=True)):
            if self.upsample == "bilinear":  # upsampled by the first conv of the block (fused)
                h = Upsampled(h, skip.shape[1], skip.shape[2])
            else:
                h = pad_to_match(self.upsamplers[level](h), skip.shape[1], skip.shape[2])
            h = tap(f"decoder_{level}", block([h, skip]))  # = block(concat([h, skip], -1))

        outputs = finish_freeboard_outputs(self._apply_heads(h))  # metres, leads at 0 (models/freeboard.py)
        outputs = self._track_corrections(outputs, x)
        outputs.update(features)
        return outputs

    def _track_corrections(self, outputs: dict, x: jax.Array) -> dict:
        """Each freeboard head corrected by the residuals of its kind's points against it (metres; on
        leads the correction is scaled by the ice probability like the head itself)."""
        for kind, vi, mi in self.point_pairs:
            head = FREEBOARD_KIND_HEADS[kind]
            if head not in outputs:
                continue
            mask = x[..., mi].astype(jnp.float32)
            residual = (x[..., vi].astype(jnp.float32) - jax.lax.stop_gradient(outputs[head])) * mask
            d_mean, d_log_sigma = self.point_corrections[kind](window_means(residual, mask, self.point_context_px))
            p_ice = jax.nn.sigmoid(jax.lax.stop_gradient(outputs["ice"])) if "ice" in outputs else 1.0
            outputs[head] = outputs[head] + p_ice * d_mean
            if head + UNCERTAINTY_SUFFIX in outputs:
                outputs[head + UNCERTAINTY_SUFFIX] = outputs[head + UNCERTAINTY_SUFFIX] * jnp.exp(d_log_sigma)
        return outputs

    def _apply_heads(self, h: jax.Array) -> dict[str, jax.Array]:
        """All 1x1 heads as one product over the stacked kernels: a single pass over the
        full-resolution features instead of one per head (same numbers as each nnx.Conv)."""
        names = list(self.heads.keys())
        dtype = self.heads[names[0]].dtype
        kernel = jnp.concatenate([self.heads[n].kernel[...].reshape(h.shape[-1], -1) for n in names], axis=1)
        bias = jnp.concatenate([self.heads[n].bias[...] for n in names])
        # The bias is added in fp32: in bf16 compute its gradient, a sum over every pixel, would
        # otherwise be accumulated in bf16 (off by tens of percent at 1e3 pixels).
        stacked = jnp.einsum("bhwc,ck->bhwk", h.astype(dtype), kernel.astype(dtype)).astype(jnp.float32)
        stacked = stacked + bias.astype(jnp.float32)
        outputs, start = {}, 0
        for name in names:
            size = self.head_sizes[name]
            logits = stacked[..., start : start + size]
            start += size
            outputs[name] = logits[..., 0] if size == 1 else logits
        return outputs


DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
FREEBOARD_KIND_HEADS = dict(zip(("laser", "radar"), FREEBOARD_HEADS, strict=True))
SIC_HEAD_SIZES = {"none": 0, "regression": 1, "classification": NUM_CLASSES["SIC"]}


def freeboard_heads(kinds, uncertainty: bool) -> dict[str, int]:
    """{head: 1} of the freeboard kinds ('laser' -> freeboard, 'radar' -> radar_freeboard), each with
    its `_uncertainty` head when `uncertainty`."""
    sizes = {}
    for kind in kinds:
        if kind not in FREEBOARD_KIND_HEADS:
            raise ValueError(f"elevation.kinds: {kind!r} is not one of {tuple(FREEBOARD_KIND_HEADS)}")
        sizes[FREEBOARD_KIND_HEADS[kind]] = 1
        if uncertainty:
            sizes[FREEBOARD_KIND_HEADS[kind] + UNCERTAINTY_SUFFIX] = 1
    return sizes


def head_sizes_from_config(heads_cfg, freeboard_kinds=None, uncertainty: bool = False) -> dict[str, int]:
    """{'ice': 1, 'SIC': 1 | 11, 'SOD': 6, 'FLOE': 7, freeboard heads}, only the heads the config
    switches on. freeboard_kinds None: `heads.freeboard` (True = the laser kind, as configs before
    `elevation.kinds` wrote it)."""
    if heads_cfg.sic not in SIC_HEAD_SIZES:
        raise ValueError(f"model.heads.sic must be one of {tuple(SIC_HEAD_SIZES)}, got {heads_cfg.sic!r}")
    sizes = {}
    if heads_cfg.ice:
        sizes["ice"] = 1
    if SIC_HEAD_SIZES[heads_cfg.sic]:
        sizes["SIC"] = SIC_HEAD_SIZES[heads_cfg.sic]
    if heads_cfg.sod:
        sizes["SOD"] = NUM_CLASSES["SOD"]
    if heads_cfg.floe:
        sizes["FLOE"] = NUM_CLASSES["FLOE"]
    if freeboard_kinds is None:
        freeboard_kinds = ("laser",) if heads_cfg.get("freeboard", False) else ()
    sizes.update(freeboard_heads(freeboard_kinds, uncertainty))
    return sizes


def build_model(model_cfg, in_channels: int, rngs: nnx.Rngs, *, freeboard_kinds=None,
                uncertainty: bool = False, point_pairs=()) -> UNet:
    """UNet from the `config.model` ConfigDict (filters, convs_per_block, norm, upsample,
    aspp_rates, aspp_channels (0 = bottleneck width), aspp_pool_window, heads, dtype,
    point_context_px) and the freeboard heads of `freeboard_kinds` (see head_sizes_from_config);
    point_pairs: (kind, values index, mask index) of the altimeter point inputs."""
    if model_cfg.dtype not in DTYPES:
        raise ValueError(f"model.dtype must be one of {tuple(DTYPES)}, got {model_cfg.dtype!r}")
    return UNet(
        in_channels,
        filters=tuple(model_cfg.filters),
        convs_per_block=model_cfg.convs_per_block,
        norm=model_cfg.norm,
        upsample=model_cfg.upsample,
        aspp_rates=tuple(model_cfg.aspp_rates),
        aspp_channels=model_cfg.aspp_channels or None,
        aspp_pool_window=model_cfg.aspp_pool_window,
        heads=head_sizes_from_config(model_cfg.heads, freeboard_kinds, uncertainty),
        dtype=DTYPES[model_cfg.dtype],
        param_dtype=jnp.float32,  # fp32 master weights; bf16 is compute only
        point_pairs=point_pairs,
        point_context_px=tuple(model_cfg.get("point_context_px", ())),
        rngs=rngs,
    )
