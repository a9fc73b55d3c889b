"""A network learns to hear a filter: predict fi.resonlp's cutoff and Q from audio,
trained end to end through the Faust program with a multi-resolution STFT loss.

    python examples/torch_resonlp/train.py [--steps 2000] [--batch 16]

Each step draws a batch of hidden (cutoff, Q) pairs, renders white noise through
`fi.resonlp` (the target sounds), lets a small network look at each target's
log-magnitude spectrum and predict the pair, renders the same noise through the same
Faust program with the predicted pair, and compares the two sounds with an MR-STFT loss.
The gradient flows from the loss through the Faust program (diffaust's compiled
derivatives: forward mode here, the excitation needing no gradient) into the network:
the network never sees the hidden values, only sounds.

Prints the validation error of the predicted parameters (mean |error| in normalized
units: log-cutoff and log-Q over their ranges) before and after training.
Needs `pip install "diffaust[torch]"`; a few minutes on a laptop CPU at the defaults.
"""

from __future__ import annotations

import argparse
import time

import torch

from diffaust.torch import FaustModule

SR = 16000
N = 4096
FC = (200.0, 4000.0)   # cutoff range, Hz (learned on a log scale)
Q = (0.7, 6.0)

PROGRAM = ('import("stdfaust.lib");\n'
           'process = fi.resonlp(hslider("fc [diff:1]", 1000, 50, 8000, 0.01), '
           'hslider("q [diff:1]", 1, 0.5, 10, 0.01), 0.5);')


def to_params(u: torch.Tensor) -> dict:
    """Normalized (batch, 2) in [0, 1] → {"fc", "q"} in their units."""
    fc = FC[0] * (FC[1] / FC[0]) ** u[:, 0]
    q = Q[0] * (Q[1] / Q[0]) ** u[:, 1]   # log scales: a resonance's height is ~20·log10(Q) dB
    return {"fc": fc, "q": q}


def mrstft(y: torch.Tensor, t: torch.Tensor, ffts=(256, 512, 1024)) -> torch.Tensor:
    """Multi-resolution STFT loss (spectral convergence + log-magnitude L1), summed over
    resolutions; y, t: (batch, samples)."""
    loss = 0.0
    for n_fft in ffts:
        win = torch.hann_window(n_fft, dtype=y.dtype)
        Y = torch.stft(y, n_fft, hop_length=n_fft // 4, window=win, return_complex=True).abs()
        T = torch.stft(t, n_fft, hop_length=n_fft // 4, window=win, return_complex=True).abs()
        sc = torch.linalg.norm(T - Y, dim=(1, 2)) / torch.linalg.norm(T, dim=(1, 2)).clamp_min(1e-8)
        mag = (torch.log(Y + 1e-7) - torch.log(T + 1e-7)).abs().mean(dim=(1, 2))
        loss = loss + (sc + mag).mean()
    return loss / len(ffts)


def features(t: torch.Tensor) -> torch.Tensor:
    """What the network hears: the log-magnitude spectrum averaged over frames (256 bins)."""
    S = torch.stft(t, 512, hop_length=128, window=torch.hann_window(512), return_complex=True).abs()
    return torch.log(S.mean(dim=2)[:, 1:257] + 1e-6)


class Net(torch.nn.Module):
    """A small 1-D convolutional network over the log spectrum (a resonance is a local
    shape, wherever the cutoff puts it), then two sigmoid outputs: normalized cutoff and Q."""

    def __init__(self):
        super().__init__()
        c = torch.nn
        self.conv = c.Sequential(c.Conv1d(1, 16, 7, padding=3), c.ReLU(),
                                 c.Conv1d(16, 16, 7, padding=3, stride=2), c.ReLU(),
                                 c.Conv1d(16, 16, 7, padding=3, stride=2), c.ReLU())
        self.head = c.Sequential(c.Flatten(), c.Linear(16 * 64, 64), c.ReLU(), c.Linear(64, 2), c.Sigmoid())

    def forward(self, f):
        f = (f - f.mean(dim=1, keepdim=True)) / 3.0
        return self.head(self.conv(f[:, None, :]))


def batch(synth, size: int, gen: torch.Generator):
    u = torch.rand(size, 2, generator=gen)
    x = torch.randn(size, 1, N, generator=gen) * 0.3
    with torch.no_grad():
        t = synth(x, to_params(u))[:, 0]
    return u, x, t


def validation_error(net, synth, data) -> float:
    u, x, t = data
    with torch.no_grad():
        return float((net(features(t)) - u).abs().mean())


def train(steps: int = 2000, size: int = 16, lr: float = 5e-3, seed: int = 0, log=print) -> tuple:
    """Train; returns (validation error before, after, seconds)."""
    # the Faust layer runs the batch on its own threads: torch's intra-op threads would fight
    # them for the cores (measured on 2 cores: a 40 ms step became 1.1 s)
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    synth = FaustModule(PROGRAM, sample_rate=SR)
    net = Net()
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    # the learning rate decays to 0 along a cosine, and each step's gradient is clipped: a
    # batch of sharp resonances (high Q) gives a rare large gradient that would otherwise
    # throw the network off a good point late in the training
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    val = batch(synth, 64, torch.Generator().manual_seed(seed + 1))
    before = validation_error(net, synth, val)
    log(f"validation parameter error before training: {before:.4f}")
    start = time.perf_counter()
    for step in range(1, steps + 1):
        u, x, t = batch(synth, size, gen)
        p = net(features(t))
        y = synth(x, to_params(p))[:, 0]          # through the Faust program
        loss = mrstft(y, t)
        opt.zero_grad()
        loss.backward()                           # ... and back through the program's derivatives
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        sched.step()
        if step % max(1, steps // 10) == 0:
            log(f"step {step:4d}  loss {loss.item():.4f}  validation error {validation_error(net, synth, val):.4f}")
    after = validation_error(net, synth, val)
    seconds = time.perf_counter() - start
    log(f"validation parameter error after {steps} steps: {after:.4f} ({before / max(after, 1e-12):.1f}x lower), "
        f"{seconds:.1f} s")
    return before, after, seconds


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    train(a.steps, a.batch, a.lr, a.seed)


if __name__ == "__main__":
    main()
