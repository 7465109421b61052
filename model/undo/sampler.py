"""The single-frame model's sampler, as Paints-UNDO runs it (diffusers_helper/k_diffusion.py):
DPM-Solver++(2M) on Karras sigmas of a linear beta schedule from 0.00085 to 0.020 over 1000
steps, classifier-free guidance on the noise, the timestep the nearest in log sigma."""

from __future__ import annotations

from collections.abc import Callable

import torch

BETA_START, BETA_END, TIMESTEPS = 0.00085, 0.020, 1000
RHO = 7.0

# (latents scaled to the model's input, timesteps) -> the guided noise prediction
Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


class KarrasSampler:
    def __init__(self) -> None:
        betas = torch.linspace(BETA_START, BETA_END, TIMESTEPS, dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0).float()
        self.sigmas = ((1 - alphas_cumprod) / alphas_cumprod) ** 0.5
        self.log_sigmas = self.sigmas.log()

    def karras_sigmas(self, steps: int) -> torch.Tensor:
        """`steps` + 1 sigmas from the largest to 0 (Karras et al.'s rho 7 spacing)."""
        ramp = torch.linspace(0, 1, steps)
        low, high = self.sigmas[0] ** (1 / RHO), self.sigmas[-1] ** (1 / RHO)
        sigmas = (high + ramp * (low - high)) ** RHO
        return torch.cat([sigmas, sigmas.new_zeros([1])])

    def timestep(self, sigma: torch.Tensor) -> torch.Tensor:
        distances = sigma.log().to(self.log_sigmas.device) - self.log_sigmas[:, None]
        return distances.abs().argmin(dim=0).view(sigma.shape).to(sigma.device)

    def denoised(self, noise: Denoiser, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The model's clean picture for `x` at `sigma` (one per sample)."""
        scaled = x / (sigma[:, None, None, None] ** 2 + 1) ** 0.5
        return x - noise(scaled, self.timestep(sigma)) * sigma[:, None, None, None]

    def sample(
        self,
        noise: Denoiser,
        x: torch.Tensor,
        sigmas: torch.Tensor,
        step_end: Callable[[int], None],
    ) -> torch.Tensor:
        """DPM-Solver++(2M) from `x` (noise at sigmas[0]) to sigma 0; `step_end(i)` after each
        step (it may raise to stop)."""
        ones = x.new_ones([x.shape[0]])
        old = None
        for i in range(len(sigmas) - 1):
            denoised = self.denoised(noise, x, sigmas[i] * ones)
            t, t_next = -sigmas[i].log(), -sigmas[i + 1].log()
            h = t_next - t
            if old is None or sigmas[i + 1] == 0:
                guess = denoised
            else:
                r = (t - (-sigmas[i - 1].log())) / h
                guess = (1 + 1 / (2 * r)) * denoised - (1 / (2 * r)) * old
            x = (sigmas[i + 1] / sigmas[i]) * x - (-h).expm1() * guess
            old = denoised
            step_end(i)
        return x
