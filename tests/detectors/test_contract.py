"""The detector protocol, checked on every detector class registered in detectors.base.REGISTRY."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import numpy as np
import pytest

import detectors
from detectors.base import REGISTRY, Detector

# import every detectors.* module so that its detectors register; an import failure is
# reported by test_detector_modules_import instead of breaking collection
IMPORT_ERRORS: dict[str, str] = {}
for _mod in pkgutil.iter_modules(detectors.__path__):
    if not _mod.name.startswith("_"):
        try:
            importlib.import_module(f"detectors.{_mod.name}")
        except Exception as exc:  # noqa: BLE001 - reported below
            IMPORT_ERRORS[_mod.name] = repr(exc)

NAMES = sorted(REGISTRY)


def test_detector_modules_import():
    assert not IMPORT_ERRORS


def test_registry_has_the_univariate_detectors():
    assert {"default", "windowed_gaussian", "hst"} <= set(NAMES)
    for name, cls in REGISTRY.items():
        assert issubclass(cls, Detector) and cls.name == name


def stream(kind: str, n: int = 700, seed: int = 0, spike_at: int | None = 500):
    """A seasonal noisy stream with a spike; dicts of 3 features for multivariate detectors."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    base = 10 + 2 * np.sin(2 * np.pi * t / 48) + rng.normal(0, 0.3, n)
    if spike_at is not None:
        base[spike_at] += 15
    if kind == "univariate":
        return [float(v) for v in base]
    other = 5 + rng.normal(0, 0.2, n)
    return [{"a": float(v), "b": float(w), "c": float(v - w)} for v, w in zip(base, other)]


def make(name: str, **kw) -> Detector:
    return REGISTRY[name](seed=42, **kw)


def run(det: Detector, xs) -> list[float]:
    return [det.score_learn_one(x) for x in xs]


@pytest.fixture(params=NAMES)
def name(request):
    return request.param


def test_scores_in_unit_interval(name):
    cls = REGISTRY[name]
    xs = stream(cls.input_kind)
    if cls.input_kind == "univariate":
        xs = xs + [1e12, -1e12, 0.0] + [3.0] * 50  # extremes and a flat stretch
    scores = run(make(name), xs)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(isinstance(s, float) for s in scores)


def test_deterministic_with_seed(name):
    xs = stream(REGISTRY[name].input_kind)
    assert run(make(name), xs) == run(make(name), xs)


def test_clone_is_fresh_and_keeps_params(name):
    xs = stream(REGISTRY[name].input_kind)
    det = make(name)
    run(det, xs[:300])
    clone = det.clone()
    assert type(clone) is type(det) and clone._get_params() == det._get_params()
    assert run(clone, xs) == run(make(name), xs)


def test_score_one_does_not_change_state(name):
    xs = stream(REGISTRY[name].input_kind)
    a, b = make(name), make(name)
    run(a, xs[:400])
    run(b, xs[:400])
    for x in xs[400:450]:
        s1 = a.score_one(x)
        assert a.score_one(x) == s1  # scoring twice gives the same score
        a.score_one(xs[0])  # and scoring other points changes nothing either
        assert a.score_learn_one(x) == s1 == b.score_learn_one(x)
    assert run(a, xs[450:]) == run(b, xs[450:])


def test_learn_one_then_score_one_equals_score_learn_one(name):
    xs = stream(REGISTRY[name].input_kind)
    a, b = make(name), make(name)
    for x in xs:
        s = a.score_one(x)
        a.learn_one(x)
        assert b.score_learn_one(x) == s


def test_protection_skips_flagged_points(name):
    kind = REGISTRY[name].input_kind
    xs = stream(kind, n=900, spike_at=None)
    warm, after = xs[:500], xs[500:]

    # the most anomalous of a few spikes, and a threshold just below its score on the
    # protected detector's own trajectory (twins share that trajectory: same seed, same data)
    probe = make(name)
    run(probe, warm)
    spikes = [size * 15.0 if kind == "univariate" else {k: v * size for k, v in xs[0].items()}
              for size in (4.0, 10.0, 1e3, 1e6)]
    spike = max(spikes, key=probe.score_one)
    thr = probe.score_one(spike) * 0.999

    def warmed():
        det = make(name, protected=True, protect_threshold=thr)
        run(det, warm)
        return det

    for _ in range(5):
        a = warmed()
        s = a.score_one(spike)
        if a.flags(s):
            break
        thr = s * 0.999
    assert a.flags(s), (s, thr)
    b, forced = warmed(), warmed()

    # sanity (the test must be able to fail): learning the spike would change the detector
    forced._learn(spike, s)
    assert run(forced, after) != run(warmed(), after)

    a.learn_one(spike)  # refused: a stays identical to b, which never saw the spike
    assert run(a, after) == run(b, after)

    # the same through score_learn_one, which returns the score but does not learn the point
    c = warmed()
    assert c.score_learn_one(spike) == s
    assert run(c, after) == run(warmed(), after)


@pytest.mark.parametrize("module", ["detectors.base", "detectors.univariate", "detectors.nab"])
def test_docstring_examples(module):
    mod = importlib.import_module(module)
    res = doctest.testmod(mod, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert res.attempted > 0 and res.failed == 0
