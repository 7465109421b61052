"""What ProcessPainter's own code computes, applied to diffusers' models (torch; for jobs only).

ProcessPainter (github nicolaus-huang/ProcessPainter) fine-tuned its motion modules and control
net inside AnimateDiff's original UNet3D, and three of that code's habits are part of what its
weights learned; diffusers' AnimateDiff pipeline does each differently:

- The temporal transformer's GroupNorm normalises each frame alone (its motion_module.py
  reshapes to (batch frames) channels h w first); diffusers normalises across the frames.
- Every spatial ResNet GroupNorm, and the UNet's last norm, pools its statistics over all
  frames: its unet.py leaves `use_inflated_groupnorm` False, so torch's GroupNorm sees the
  whole (batch, channels, frames, h, w) tensor. diffusers normalises each frame alone. Its
  control net sets the flag, so there each frame stays on its own, as in diffusers.
- With `ddim: true` (its `*-cn-final` configs) each conditioned frame starts from a DDIM
  inversion of its picture through plain SD1.5 (inverse DDIM, 50 steps, empty prompt,
  guidance 1), the other frames from noise.

`as_processpainter` gives a built pipeline's motion UNet the first two; `inverted` computes the
third. The double output projection of its temporal attention is folded into the weights when
they are converted (see convert.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .convert import FrameGroupNorm, normalise_frames_apart

INVERSION_STEPS = 50  # ddim.py's num_steps
NEGATIVE = "worst quality, low quality, letterboxed"  # its configs/prompts' n_prompt
# configs/inference/inference.yaml's noise_scheduler_kwargs; the rest DDIMScheduler's defaults
# (which include "leading" timestep spacing and the final alpha set to one).
SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="linear", steps_offset=1, clip_sample=False
)


class FrameCount:
    """How many frames the UNet's current call holds: its norms work on (batch frames, c, h, w)
    and cannot tell the frames from the batch."""

    frames = 1


class PooledGroupNorm(torch.nn.GroupNorm):
    """GroupNorm over all frames of a sample together, on (batch frames, c, h, w) tensors (as
    torch's GroupNorm does on ProcessPainter's (batch, c, frames, h, w) ones)."""

    count: FrameCount

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        frames = self.count.frames
        if x.ndim != 4 or frames <= 1 or x.shape[0] % frames:
            return super().forward(x)
        bf, c, h, w = x.shape
        video = x.reshape(bf // frames, frames, c, h, w).transpose(1, 2)
        out = F.group_norm(video, self.num_groups, self.weight, self.bias, self.eps)
        return out.transpose(1, 2).reshape(bf, c, h, w)


def pool_spatial_norms(unet: torch.nn.Module) -> torch.nn.Module:
    """Make a UNetMotionModel's ResNet norms and its output norm pool over frames (in place)."""
    from diffusers.models.resnet import ResnetBlock2D

    count = FrameCount()
    norms = [unet.conv_norm_out] if unet.conv_norm_out is not None else []
    for module in unet.modules():
        if isinstance(module, ResnetBlock2D):
            norms += [module.norm1, module.norm2]
    for norm in norms:
        if type(norm) is torch.nn.GroupNorm:
            norm.__class__ = PooledGroupNorm
            norm.count = count

    def note_frames(module, args, kwargs) -> None:
        sample = args[0] if args else kwargs["sample"]
        count.frames = int(sample.shape[2])

    unet.register_forward_pre_hook(note_frames, with_kwargs=True)
    return unet


def as_processpainter(unet: torch.nn.Module) -> torch.nn.Module:
    """A pipeline's motion UNet computing what ProcessPainter's UNet3D computes (in place)."""
    if not any(isinstance(m, PooledGroupNorm) for m in unet.modules()):
        pool_spatial_norms(unet)
    return normalise_frames_apart(unet)


def trained_by_processpainter(model: torch.nn.Module) -> bool:
    """Whether a loaded motion adapter or control net is ProcessPainter's (convert.py gives
    those, and only those, frame-wise temporal norms)."""
    return any(isinstance(m, FrameGroupNorm) for m in model.modules())


def scheduler():
    """The DDIM scheduler ProcessPainter samples with."""
    from diffusers import DDIMScheduler

    return DDIMScheduler(**SCHEDULER)


def inverse_scheduler(config):
    """The inverse DDIM schedule ProcessPainter inverts with: SD1.5's own scheduler config
    (scaled linear betas, steps offset 1, alpha at step 0 not set to one), "leading" steps."""
    from diffusers import DDIMInverseScheduler

    return DDIMInverseScheduler.from_config(config, timestep_spacing="leading")


def inverted(
    image: torch.Tensor,
    vae,
    text_encoder,
    tokenizer,
    unet,
    scheduler_config,
    step_end=None,
) -> torch.Tensor:
    """The DDIM inversion of `image` ((1, 3, h, w), values -1..1) as ProcessPainter's ddim.py
    makes it: the VAE's mean latent, then `INVERSION_STEPS` inverse DDIM steps of the plain
    SD1.5 UNet `unet` with an empty prompt and no guidance. (1, 4, h/8, w/8)."""
    from diffusers import StableDiffusionPipeline

    latents = vae.encode(image.to(vae.device, vae.dtype)).latent_dist.mean
    latents = latents * vae.config.scaling_factor
    pipe = StableDiffusionPipeline(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        unet=unet,
        scheduler=inverse_scheduler(scheduler_config),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    height, width = image.shape[2:]
    return pipe(
        prompt="",
        negative_prompt="",
        guidance_scale=1.0,
        width=width,
        height=height,
        num_inference_steps=INVERSION_STEPS,
        latents=latents,
        output_type="latent",
        callback_on_step_end=step_end,
    ).images
