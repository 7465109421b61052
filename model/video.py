"""The models behind the diffusion engine, on torch and diffusers (imported only for its jobs).

`Video` is AnimateDiff's sparse-control pipeline: SD1.5 + a motion module + a sparse control
net that holds chosen frames to given pictures. `Picture` is SD1.5 img2img / inpainting for the
light mode. Both are loaded once and kept for the next job, with the memory switches chosen by
the GPU's free memory (and said in the log).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from paintstep.process import PaintError
from PIL import Image

from . import convert, processpainter
from .control_lora import load_control_lora, split_keys, use_control_lora
from .memory import LEANER, MEMORY, Memory, choose_memory, device_of, place
from .weights import Weights, lora_file

log = logging.getLogger("paintstep.diffusion")

# diffusers' and transformers' own notices would flood the terminal, -q or not; they set their
# loggers' levels from these when first imported (which is after this, in load_base).
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

NEGATIVE = "blurry, low quality, watermark, text"
SCHEDULER = dict(
    beta_schedule="linear",
    clip_sample=False,
    steps_offset=1,
    timestep_spacing="linspace",
)


class Cancelled(Exception):
    pass


@contextlib.contextmanager
def reading(path: Path, what: str) -> Iterator[None]:
    """Turns a failure to load weights into a sentence naming the file and what it should be."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    except PaintError:
        raise
    except Exception as error:  # safetensors, torch and diffusers each raise their own kinds
        raise PaintError(
            f"Could not load {what} from {path} ({str(error).splitlines()[0][:200]}); put "
            f"{what} there, in the diffusers folder layout or as one .safetensors/.ckpt file."
        ) from None


def load_base(weights: Weights, dtype: torch.dtype) -> dict[str, Any]:
    """SD1.5's components: unet, vae, text_encoder, tokenizer, scheduler (DDIM, linear betas),
    and base_scheduler_config, the scheduler config the base model comes with."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    assert weights.base is not None
    what = "Stable Diffusion 1.5"
    with reading(weights.base, what):
        if weights.base.is_dir():
            pipe = StableDiffusionPipeline.from_pretrained(
                weights.base,
                dtype=dtype,
                safety_checker=None,
                requires_safety_checker=False,
                local_files_only=True,
            )
        else:
            pipe = StableDiffusionPipeline.from_single_file(
                weights.base,
                config=str(weights.base_config),
                dtype=dtype,
                safety_checker=None,
                requires_safety_checker=False,
                local_files_only=True,
            )
    parts = {name: getattr(pipe, name) for name in ("unet", "vae", "text_encoder", "tokenizer")}
    parts["scheduler"] = DDIMScheduler.from_config(pipe.scheduler.config, **SCHEDULER)
    parts["base_scheduler_config"] = pipe.scheduler.config
    return parts


def load_motion(path: Path, dtype: torch.dtype, processpainter: bool = False):
    from diffusers import MotionAdapter

    with reading(path, "the motion module"):
        if path.is_dir():
            return convert.load_folder(MotionAdapter, path, dtype)
        state = convert.read_checkpoint(path)
        return convert.motion_adapter(state, processpainter or None).to(dtype)


def load_control(path: Path, dtype: torch.dtype, processpainter: bool):
    from diffusers import SparseControlNetModel

    with reading(path, "the sparse control net"):
        if path.is_dir():
            return convert.load_folder(SparseControlNetModel, path, dtype)
        state = convert.read_checkpoint(path)
        return convert.control_net(state, processpainter).to(dtype)


def adapted(pipe, adapter: str, names=("unet", "text_encoder", "controlnet")) -> bool:
    """Whether the LoRA called `adapter` wraps any layer of the pipeline's models `names`."""
    models = [getattr(pipe, name, None) for name in names]
    return any(
        adapter in getattr(module, "lora_A", {})
        for model in models
        if model is not None
        for module in model.modules()
    )


# One model runs at a time: the GPU is one resource, and jobs on several workers take turns.
GPU = threading.RLock()


class Model:
    """A loaded pipeline, kept between jobs: one at a time, as GPU memory is precious."""

    loaded: ClassVar[Model | None] = None

    def __init__(self, key: tuple, weights: Weights, memory: Memory, device: torch.device):
        self.key = key
        self.weights = weights
        self.memory = memory
        self.device = device
        self.loras: set[str] = set()
        self.model_loras: set[str] = set()  # those with layers in the UNet or text encoder
        self.pipe = place(self.build(), memory, device)

    def build(self):
        raise NotImplementedError

    @classmethod
    @contextlib.contextmanager
    def session(cls, weights: Weights, memory: str) -> Iterator[Model]:
        """The model, loaded or kept, for this caller alone until the block ends."""
        with GPU:
            yield cls.get(weights, memory)

    @classmethod
    def get(cls, weights: Weights, memory: str) -> Model:
        device = device_of(weights)
        key = (cls.__name__, weights, str(device))
        with GPU:
            loaded = Model.loaded
            # With "auto", the plan chosen when the model was loaded stays: free memory
            # measured now would count the loaded model itself, and flip the plan each job.
            if loaded is not None and loaded.key == key:
                if memory in ("auto", loaded.memory.name):
                    return loaded
            Model.loaded = None  # let the old one go before the new one takes memory
            plan, why = choose_memory(memory, device)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            log.info("loading the %s model on %s: %s (%s)", cls.__name__, device, plan.says, why)
            Model.loaded = cls(key, weights, plan, device)
            return Model.loaded

    def use_lora(self, name: str, scale: float) -> None:
        """Apply the LoRA called `name` at `scale`, or none when name is empty."""
        controlnet = getattr(self.pipe, "controlnet", None)
        if not name:
            if self.model_loras:
                self.pipe.disable_lora()
            if self.loras and controlnet is not None:
                use_control_lora(controlnet, None, 0.0)
            return
        adapter = name.replace(".", "_")  # peft's adapter names have no dots
        if name not in self.loras:
            path = lora_file(self.weights, name)
            with reading(path, f"the LoRA {name!r}"):
                models, control = split_keys(path)
                if models and path.is_dir():
                    self.pipe.load_lora_weights(path, adapter_name=adapter)
                elif models:
                    self.pipe.load_lora_weights(
                        path.parent, weight_name=path.name, adapter_name=adapter
                    )
                if control and controlnet is not None:
                    load_control_lora(controlnet, path, adapter)
            if not adapted(self.pipe, adapter):
                if models:
                    self.pipe.delete_adapters(adapter)
                raise PaintError(
                    f"The LoRA {name!r} ({path}) adapts no layer of the model: it is not a "
                    "diffusers, peft or kohya LoRA for SD1.5. (AnimateDiff's domain adapter, "
                    f'v3_sd15_adapter.ckpt, goes in "adapter" of {self.weights.config}.)'
                )
            self.loras.add(name)
            if adapted(self.pipe, adapter, ("unet", "text_encoder")):
                self.model_loras.add(name)
        if name in self.model_loras:
            self.pipe.enable_lora()
            self.pipe.set_adapters([adapter], [scale])
        elif self.model_loras:
            self.pipe.disable_lora()  # this LoRA is the control net's alone
        if controlnet is not None:
            use_control_lora(controlnet, adapter, scale)

    def run(
        self,
        seed: int,
        expected: int,
        cancel,
        report: Callable[[float], None],
        pipe=None,
        prepare: Callable | None = None,
        **arguments,
    ) -> np.ndarray | None:
        """The pipeline's (or `pipe`'s) output as floats 0-1, or None when cancelled.
        `expected` is how many denoising steps it will take, for the progress report.
        `prepare(generator, step_end)`, run first with the seeded generator, gives further
        arguments (its own denoising steps count towards `expected` through `step_end`).
        Out of GPU memory, it says so and tries once more with the next, leaner plan."""
        furthest = 0.0

        def forward_only(share: float) -> None:
            nonlocal furthest
            if share > furthest:
                furthest = share
                report(share)

        args = (seed, expected, cancel, forward_only, pipe, prepare, arguments)
        try:
            return self.run_once(*args)
        except torch.OutOfMemoryError:
            leaner = LEANER.get(self.memory.name)
            if leaner is None:
                raise PaintError(self.out_of_memory()) from None
        log.warning(
            "the GPU ran out of memory with the %s plan: trying again with %s (%s)",
            self.memory.name,
            leaner,
            MEMORY[leaner].says,
        )
        self.use_plan(MEMORY[leaner])
        try:
            return self.run_once(*args)
        except torch.OutOfMemoryError:
            raise PaintError(self.out_of_memory()) from None

    def out_of_memory(self) -> str:
        return (
            f"The GPU ran out of memory even with the {self.memory.name} plan "
            f"({self.memory.says}): ask for a smaller size (-o size=384) or fewer frames, or "
            "close other programs that use the GPU."
        )

    def use_plan(self, memory: Memory) -> None:
        """Switch the loaded pipeline to another memory plan, in place."""
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
        self.memory = memory
        self.pipe = place(self.pipe, memory, self.device)

    def run_once(self, seed, expected, cancel, report, pipe, prepare, arguments):
        done = 0

        def step_end(pipe, i: int, t, tensors: dict) -> dict:
            nonlocal done
            if cancel.is_set():
                raise Cancelled
            done += 1
            report(min(1.0, done / expected))
            return tensors

        with torch.random.fork_rng(devices=[]):  # the callers hold GPU
            # The pipelines draw some noise (encoding conditioning frames) from the global
            # generator: seeding it too makes a seed give the same process every time.
            torch.manual_seed(seed)
            generator = torch.Generator("cpu").manual_seed(seed)
            try:
                with torch.inference_mode():
                    extra = {} if prepare is None else prepare(generator, step_end)
                    output = (pipe or self.pipe)(
                        generator=generator,
                        output_type="np",
                        callback_on_step_end=step_end,
                        **arguments,
                        **extra,
                    )
            except Cancelled:
                return None
        return output.frames[0] if hasattr(output, "frames") else output.images[0]


class Video(Model):
    def build(self):
        from diffusers import AnimateDiffSparseControlNetPipeline

        dtype = self.memory.dtype
        assert self.weights.motion is not None and self.weights.control is not None
        parts = load_base(self.weights, dtype)
        self.base_scheduler_config = parts.pop("base_scheduler_config")
        adapter = load_motion(self.weights.motion, dtype, self.weights.processpainter)
        pipe = AnimateDiffSparseControlNetPipeline(
            **parts,
            motion_adapter=adapter,
            controlnet=load_control(self.weights.control, dtype, self.weights.processpainter),
        )
        # The pipeline copies the adapter's weights into fresh modules of its own, so
        # ProcessPainter's way of computing is given to the UNet it built.
        self.processpainter = processpainter.trained_by_processpainter(adapter)
        self.negative = NEGATIVE
        if self.processpainter:
            processpainter.as_processpainter(pipe.unet)
            pipe.scheduler = processpainter.scheduler()
            self.negative = processpainter.NEGATIVE
        if self.weights.adapter is not None:
            with reading(self.weights.adapter, "AnimateDiff's domain adapter"):
                state = convert.read_checkpoint(self.weights.adapter)
                convert.merge_domain_adapter(pipe.unet, state, self.weights.adapter_scale)
        self.plain_unet = parts["unet"]  # SD1.5's own, for DDIM inversion (on the CPU between)
        return pipe

    def generate(
        self,
        conditions: list[np.ndarray],
        size: tuple[int, int],
        prompt: str,
        seed: int,
        settings: dict[str, Any],
        cancel,
        report: Callable[[float], None],
    ) -> np.ndarray | None:
        """settings["frames"] frames (F, h, w, 3) of floats 0-1; frame 0 held to conditions[0]
        and, when there is a second, the last frame to it. None when cancelled."""
        frames = settings["frames"]
        images = [Image.fromarray(c).resize(size, Image.Resampling.LANCZOS) for c in conditions]
        held = [0, frames - 1][: len(images)]
        steps = settings["sampling_steps"]
        inversion = settings.get("inversion", "auto")
        invert = inversion == "on" or (inversion == "auto" and self.processpainter)
        expected = steps + (processpainter.INVERSION_STEPS * len(images) if invert else 0)

        def starting_latents(generator, step_end) -> dict[str, Any]:
            return {"latents": self.starting_latents(images, held, frames, generator, step_end)}

        with GPU:
            self.use_lora(settings["lora"], settings["lora_scale"])
            return self.run(
                seed,
                expected,
                cancel,
                report,
                prepare=starting_latents if invert else None,
                num_inference_steps=steps,
                prompt=prompt,
                negative_prompt=self.negative,
                width=size[0],
                height=size[1],
                num_frames=frames,
                guidance_scale=settings["guidance"],
                conditioning_frames=images,
                controlnet_frame_indices=held,
                controlnet_conditioning_scale=settings["control"],
            )

    def starting_latents(
        self, images: list[Image.Image], held: list[int], frames: int, generator, step_end
    ) -> torch.Tensor:
        """The latents denoising starts from: noise, as the pipeline draws it, with each held
        frame replaced by the DDIM inversion of its picture (ProcessPainter's `ddim: true`)."""
        from diffusers.utils.torch_utils import randn_tensor

        pipe = self.pipe
        width, height = images[0].size
        factor = pipe.vae_scale_factor
        shape = (1, pipe.unet.config.in_channels, frames, height // factor, width // factor)
        dtype = pipe.text_encoder.dtype
        latents = randn_tensor(shape, generator=generator, device=self.device, dtype=dtype)
        self.plain_unet.to(self.device)
        try:
            for index, image in zip(held, images):
                pixels = torch.from_numpy(np.asarray(image, np.float32) / 127.5 - 1)
                latents[:, :, index] = processpainter.inverted(
                    pixels.permute(2, 0, 1)[None],
                    pipe.vae,
                    pipe.text_encoder,
                    pipe.tokenizer,
                    self.plain_unet,
                    self.base_scheduler_config,
                    step_end,
                ).to(latents.device, latents.dtype)
        finally:
            if self.device.type != "cpu":
                self.plain_unet.to("cpu")
        return latents


class Picture(Model):
    """SD1.5 img2img for a whole canvas, inpainting for a masked region (light mode)."""

    def build(self):
        from diffusers import StableDiffusionImg2ImgPipeline, StableDiffusionInpaintPipeline

        parts = load_base(self.weights, self.memory.dtype)
        parts.pop("base_scheduler_config")
        self.inpaint = StableDiffusionInpaintPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
        self.inpaint.set_progress_bar_config(disable=True)
        return StableDiffusionImg2ImgPipeline(
            **parts, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )

    def generate(
        self,
        canvas: np.ndarray,
        mask: np.ndarray | None,
        size: tuple[int, int],
        prompt: str,
        seed: int,
        settings: dict[str, Any],
        cancel,
        report: Callable[[float], None],
    ) -> np.ndarray | None:
        """The finished picture (h, w, 3) of floats 0-1, or None when cancelled."""
        image = Image.fromarray(canvas).resize(size, Image.Resampling.LANCZOS)
        strength = settings["strength"]
        # img2img and inpainting denoise only the last `strength` of the steps: at least one
        total = max(settings["sampling_steps"], math.ceil(1 / strength))
        steps = max(1, int(total * strength))
        arguments = dict(
            num_inference_steps=total,
            prompt=prompt,
            negative_prompt=NEGATIVE,
            image=image,
            strength=strength,
            guidance_scale=settings["guidance"],
        )
        pipe = self.pipe
        if mask is not None:
            pipe = self.inpaint
            white = Image.fromarray(np.where(mask, 255, 0).astype(np.uint8))
            arguments.update(
                mask_image=white.resize(size, Image.Resampling.BILINEAR),
                width=size[0],
                height=size[1],
            )
        with GPU:
            self.use_lora(settings["lora"], settings["lora_scale"])
            return self.run(seed, steps, cancel, report, pipe=pipe, **arguments)
