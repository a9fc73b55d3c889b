"""Block losses (diffaust.train.losses): values, analytic gradients vs finite differences, parser."""

import numpy as np
import pytest

from diffaust.errors import UsageError
from diffaust.train.losses import (
    BLOCK_LOSSES,
    LOSSES,
    MRSTFT,
    LogMel,
    mae,
    mel_filterbank,
    mrstft,
    mse,
    parse_loss,
)

RNG = np.random.default_rng(1234)
Y = RNG.standard_normal((2, 3000))  # 3000 > the largest FFT size (2048)
T = RNG.standard_normal((2, 3000))

# A small log-mel loss so that the filters are non-empty and the test fast.
SMALL_LOGMEL = LogMel(sample_rate=16000.0, n_fft=512, hop_size=128, n_mels=40)

CASES = {
    "mse": mse,
    "mae": mae,
    "mrstft": BLOCK_LOSSES["mrstft"],
    "logmel": BLOCK_LOSSES["logmel"],
    "logmel-small": SMALL_LOGMEL,
    "mrstft-weighted": MRSTFT(w_sc=0.3, w_log_mag=2.0, eps=1e-6),
}


def central_derivative(f, y, t, d):
    """d/ds f(y + s d) at s = 0: central differences with one Richardson step (error O(h^4)).

    The step moves y by 5e-5 in Euclidean norm: the log-magnitude terms have large curvature
    at small magnitudes (a longer step, or plain O(h^2) differences, miss 1e-6), while a
    shorter one drowns the small single-sample derivatives (~1/N) in rounding error.
    """
    h = 5e-5 / np.linalg.norm(d)

    def cd(step):
        return (f(y + step * d, t)[0] - f(y - step * d, t)[0]) / (2 * step)
    return (4 * cd(h / 2) - cd(h)) / 3


@pytest.mark.parametrize("name", sorted(CASES))
def test_gradient_matches_finite_differences(name):
    f = CASES[name]
    value, grad = f(Y, T)
    assert isinstance(value, float) and np.isfinite(value) and value > 0
    assert grad.shape == Y.shape and grad.dtype == np.float64
    rng = np.random.default_rng(7)
    directions = [rng.standard_normal(Y.shape) for _ in range(3)]
    for c, n in [(0, 0), (1, 1500), (1, 2999)]:  # single samples, edges included (reflect padding)
        e = np.zeros(Y.shape)
        e[c, n] = 1.0
        directions.append(e)
    for d in directions:
        analytic = float(np.sum(grad * d))
        numeric = central_derivative(f, Y, T, d)
        assert abs(analytic - numeric) <= 1e-6 * abs(numeric) + 1e-15, (name, analytic, numeric)


@pytest.mark.parametrize("name", ["mse", "mae", "l1", "l2", "mrstft", "logmel"])
def test_zero_at_target(name):
    value, grad = BLOCK_LOSSES[name](T, T)
    assert value == 0.0
    assert not np.any(grad)


@pytest.mark.parametrize("name", sorted(CASES))
def test_multichannel_is_sum_of_channels(name):
    f = CASES[name]
    value, grad = f(Y, T)
    v0, g0 = f(Y[0], T[0])  # a 1-D block is one channel
    v1, g1 = f(Y[1:], T[1:])
    assert g0.shape == (3000,) and g1.shape == (1, 3000)
    assert value == pytest.approx(v0 + v1, rel=1e-12)
    np.testing.assert_allclose(grad, np.vstack([g0, g1[0]]), rtol=1e-12, atol=1e-18)


def test_mse_mae_values_and_block_l1_l2():
    y = np.array([[1.0, 2.0, 3.0, 4.0]])
    t = np.array([[1.0, 0.0, 4.0, 2.0]])
    assert mse(y, t)[0] == pytest.approx((0 + 4 + 1 + 4) / 4)
    assert mae(y, t)[0] == pytest.approx((0 + 2 + 1 + 2) / 4)
    np.testing.assert_array_equal(mae(y, t)[1], [[0.0, 0.25, -0.25, 0.25]])  # 0 at the tie
    np.testing.assert_array_equal(mse(y, t)[1], [[0.0, 1.0, -0.5, 1.0]])
    # the block l1/l2 are the means of the per-sample losses
    assert BLOCK_LOSSES["l1"](y, t)[0] == pytest.approx(np.mean(LOSSES["l1"].value(y, t)))
    assert BLOCK_LOSSES["l2"](y, t)[0] == pytest.approx(np.mean(LOSSES["l2"].value(y, t)))


def test_mrstft_keyword_form_and_structure():
    v, g = mrstft(Y[0], T[0], fft_sizes=(256,), hop_sizes=(64,), win_lengths=(256,))
    v2, g2 = MRSTFT(fft_sizes=(256,), hop_sizes=(64,), win_lengths=(256,))(Y[0], T[0])
    assert v == v2 and np.array_equal(g, g2)
    # average over resolutions: two equal resolutions give the value of one
    v3, _ = mrstft(Y[0], T[0], fft_sizes=(256, 256), hop_sizes=(64, 64), win_lengths=(256, 256))
    assert v3 == pytest.approx(v)
    # scale: spectral convergence is scale-invariant, the log term too
    assert mrstft(3 * Y, 3 * T)[0] == pytest.approx(mrstft(Y, T)[0], rel=1e-9)
    with pytest.raises(UsageError, match="too short"):
        mrstft(Y[:, :1000], T[:, :1000])  # 1000 <= 2048 // 2
    with pytest.raises(UsageError, match="equal length"):
        MRSTFT(fft_sizes=(512,), hop_sizes=(50, 60), win_lengths=(240,))
    with pytest.raises(UsageError, match="shape"):
        mse(Y, T[:, :10])


def test_mel_filterbank_shape_and_peaks():
    fb = mel_filterbank(44100.0, 2048, 128)
    assert fb.shape == (1025, 128)
    assert fb.min() >= 0 and fb.max() <= 1
    # HTK: the top filter peaks near mel^-1(128/129 * mel(22050))
    mel = lambda f: 2595 * np.log10(1 + f / 700)  # noqa: E731
    peak_hz = 700 * (10 ** (128 / 129 * mel(22050) / 2595) - 1)
    assert abs(np.argmax(fb[:, -1]) * 44100 / 2048 - peak_hz) < 44100 / 2048


# ------------------------------------------------------------------ parser


def test_parse_loss_sums_and_weights():
    loss = parse_loss("l2+0.5*mrstft")
    value, grad = loss(Y, T)
    v1, g1 = mse(Y, T)
    v2, g2 = mrstft(Y, T)
    assert value == pytest.approx(v1 + 0.5 * v2, rel=1e-12)
    np.testing.assert_allclose(grad, g1 + 0.5 * g2, rtol=1e-12, atol=1e-18)
    assert [(w, e.name) for w, e in parse_loss(" mae + 2 * mse + 1e+0*l1 ").terms] == [
        (1.0, "mae"), (2.0, "mse"), (1.0, "l1")]
    assert parse_loss("0*mse")(Y, T)[0] == 0.0


@pytest.mark.parametrize("spec, message", [
    ("l3", "unknown loss 'l3'.*mse, mae, l2, l1, mrstft, logmel"),
    ("0.5*", "empty term '0.5\\*'"),
    ("+mrstft", "empty term ''"),
    ("mse+", "empty term ''"),
    ("*mse", "missing weight"),
    ("-0.5*mse", "must be a finite number >= 0"),
    ("nan*mse", "must be a finite number >= 0"),
    ("inf*mse", "must be a finite number >= 0"),
    ("x*mse", "bad weight 'x'"),
    ("l2-0.5*mrstft", "bad weight 'l2-0.5'"),
])
def test_parse_loss_errors(spec, message):
    with pytest.raises(UsageError, match=message):
        parse_loss(spec)


# ------------------------------------------------------------------ auraloss reference


def test_mrstft_matches_auraloss():
    torch = pytest.importorskip("torch")
    freq = pytest.importorskip("auraloss.freq")
    ref = freq.MultiResolutionSTFTLoss()
    for c in range(2):
        expected = float(ref(torch.from_numpy(Y[c][None, None]), torch.from_numpy(T[c][None, None])))
        assert mrstft(Y[c], T[c])[0] == pytest.approx(expected, rel=1e-5)


def test_stft_convention_against_direct_dft():
    """The documented convention (torch.stft, center=True, reflect pad, centred periodic Hann)."""
    from diffaust.train.losses import _frame_index, _hann, _stft

    x, n_fft, hop, win = Y[0, :700], 256, 50, 200
    xp = np.pad(x, n_fft // 2, mode="reflect")
    w = np.zeros(n_fft)
    w[28:228] = np.hanning(201)[:200]  # periodic Hann of 200 = symmetric of 201 without its last point
    frames = np.array([xp[m * hop:m * hop + n_fft] for m in range(1 + len(x) // hop)])
    dft = np.exp(-2j * np.pi * np.outer(np.arange(n_fft), np.arange(n_fft // 2 + 1)) / n_fft)
    np.testing.assert_allclose(_stft(x, _frame_index(len(x), n_fft, hop), _hann(win, n_fft)),
                               (frames * w) @ dft, atol=1e-10)
