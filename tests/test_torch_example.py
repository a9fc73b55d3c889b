"""The DDSP example (examples/torch_resonlp/train.py): a network learns fi.resonlp's cutoff
and Q from audio, trained end to end through the Faust program with an MR-STFT loss; a
shorter run than the example's default must cut the validation parameter error 5×."""

import os
import sys

import pytest

pytest.importorskip("torch")

HERE = os.path.join(os.path.dirname(__file__), "..", "examples", "torch_resonlp")


def test_network_learns_the_filter_through_faust():
    sys.path.insert(0, HERE)
    try:
        import train
    finally:
        sys.path.remove(HERE)
    lines = []
    before, after, seconds = train.train(steps=1200, size=16, lr=5e-3, seed=0, log=lines.append)
    assert before > 0.2  # an untrained network: about a quarter of each range off
    assert after * 5 <= before, "\n".join(lines)
