"""What is learned from demonstrated searches (after Ehlers et al., ICRA 2019): where a person looks, and
how hard they push while moving.

- The exploration distribution: a Gaussian mixture over the positions the demonstrations covered,
  as offsets from the nominal hole (d = 2: x, y on the fixture's surface; m), fitted by
  scikit-learn with the number of components chosen by BIC.
- The force model: Gaussian mixture regression from the search velocity (d,) m/s to the force the
  person applied (3,) N (the robot on the part, base axes): a mixture over the joint samples
  (scikit-learn, BIC), conditioned on the velocity by the `gmr` package. State-invariant: the force
  depends on how the peg moves, not on where it is.

Stored as one JSON file (search_model.json) with its units and provenance; load_search_model checks
every field and names the one at fault.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

FORMAT = "robot_dyn.search_model"
VERSION = 1
MODEL_FILE = "search_model.json"


class SearchModelError(ValueError):
    """A search model that cannot be used; the message names the file and the field."""


@dataclass
class Mixture:
    """A Gaussian mixture: weights (K,), means (K, n), covariances (K, n, n)."""

    weights: np.ndarray
    means: np.ndarray
    covariances: np.ndarray
    bic: dict = field(default_factory=dict)  # components -> BIC of the candidates tried

    def gmm(self):
        from gmr import GMM

        return GMM(len(self.weights), priors=self.weights, means=self.means, covariances=self.covariances)

    def density(self, x: np.ndarray) -> np.ndarray:
        """The mixture's density at points x (N, n)."""
        return self.gmm().to_probability_density(np.asarray(x, float))

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """`count` draws (count, n), from rng (seeded: a search can be replayed)."""
        components = rng.choice(len(self.weights), size=count, p=self.weights / self.weights.sum())
        return np.array([rng.multivariate_normal(self.means[k], self.covariances[k]) for k in components])

    def as_dict(self) -> dict:
        return {"weights": self.weights.tolist(), "means": self.means.tolist(), "covariances": self.covariances.tolist(),
                "bic": {str(k): v for k, v in self.bic.items()}}


def fit_mixture(samples: np.ndarray, max_components: int, seed: int, regularisation: float = 1e-2) -> Mixture:
    """scikit-learn's GaussianMixture (full covariances) with 1..max_components components, the one of
    lowest BIC. Fitted on standardised samples (metres, m/s and newtons differ by orders of magnitude),
    each covariance widened by `regularisation` of its variable's variance (no component collapses on
    a few samples and makes the regression jump)."""
    from sklearn.mixture import GaussianMixture

    samples = np.asarray(samples, float)
    if samples.ndim != 2 or not np.all(np.isfinite(samples)):
        raise SearchModelError(f"search model: samples must be a finite (N, n) array, got shape {samples.shape}")
    centre, scale = samples.mean(axis=0), np.maximum(samples.std(axis=0), 1e-9)
    standard = (samples - centre) / scale
    best, bic = None, {}
    for k in range(1, min(max_components, len(samples) // 10) + 1):
        gm = GaussianMixture(k, covariance_type="full", random_state=seed, reg_covar=regularisation, n_init=2).fit(standard)
        bic[k] = float(gm.bic(standard))
        if best is None or bic[k] < bic[best[0]]:
            best = (k, gm)
    if best is None:
        raise SearchModelError(f"search model: {len(samples)} samples are too few to fit a mixture (need 10 or more)")
    gm = best[1]
    return Mixture(gm.weights_.copy(), gm.means_ * scale + centre, gm.covariances_ * np.outer(scale, scale), bic)


@dataclass
class SearchModel:
    """The exploration distribution over offsets (d,) m and the force model velocity (d,) m/s -> force (3,) N."""

    positions: Mixture
    force: Mixture
    extent: np.ndarray  # (d,) m: the largest offset the demonstrations covered, per axis
    meta: dict = field(default_factory=dict)  # task, nominal hole, demonstrations, samples, sources

    @property
    def dims(self) -> int:
        return self.positions.means.shape[1]

    def density(self, offsets: np.ndarray) -> np.ndarray:
        return self.positions.density(offsets)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """Offsets (count, d) m drawn from the exploration distribution, kept inside the demonstrated extent."""
        return np.clip(self.positions.sample(count, rng), -self.extent, self.extent)

    def box(self) -> tuple[np.ndarray, np.ndarray]:
        """The search box (lo, hi) (d,) m: the demonstrated extent."""
        return -self.extent, self.extent.copy()

    def predict_force(self, velocity: np.ndarray) -> np.ndarray:
        """The force (3,) N the demonstrations applied at this search velocity (d,) m/s (GMR's conditional mean)."""
        v = np.asarray(velocity, float).reshape(1, -1)
        return self.force.gmm().predict(np.arange(self.dims), v)[0]

    def save(self, out: str | Path) -> Path:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        path = out / MODEL_FILE
        document = {"format": FORMAT, "version": VERSION,
                    "units": {"positions": "offsets from the nominal hole, base-frame axes, m",
                              "force_inputs": "search velocity, base-frame axes, m/s",
                              "force_outputs": "force the robot applies on the part, base-frame axes, N"},
                    "positions": self.positions.as_dict(), "force": self.force.as_dict(),
                    "extent_m": self.extent.tolist(), "meta": self.meta}
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(document, indent=1))
        tmp.replace(path)  # never a half-written model
        return path


def fit_search_model(demos, max_components: int = 5, seed: int = 0, rate_hz: float = 20.0, meta: dict | None = None) -> SearchModel:
    """The model of demonstrated searches (robot_dyn.search.demonstrations.SearchDemo), each resampled at
    `rate_hz` (neighbouring ticks say nothing new)."""
    demos = list(demos)
    if not demos:
        raise SearchModelError("search model: no demonstrations")
    offsets, velocities, forces = [], [], []
    for demo in demos:
        keep = demo.resampled(rate_hz)
        offsets.append(keep.offsets)
        velocities.append(keep.velocities)
        forces.append(keep.forces)
    offsets, velocities, forces = np.vstack(offsets), np.vstack(velocities), np.vstack(forces)
    positions = fit_mixture(offsets, max_components, seed)
    force = fit_mixture(np.hstack([velocities, forces]), max_components, seed)
    extent = np.max(np.abs(offsets), axis=0)
    info = {"demonstrations": len(demos), "samples": len(offsets), "rate_hz": rate_hz, **(meta or {})}
    return SearchModel(positions, force, extent, info)


def load_search_model(path: str | Path) -> SearchModel:
    """A saved model (its folder or file); SearchModelError names the file and the field at fault."""
    path = Path(path)
    file = path / MODEL_FILE if path.is_dir() else path
    try:
        document = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SearchModelError(f"{file}: not a readable search model ({exc})") from None
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise SearchModelError(f"{file}: format: expected '{FORMAT}'")
    if document.get("version") != VERSION:
        raise SearchModelError(f"{file}: version: expected {VERSION}, got {document.get('version')!r}")
    extent = _array(file, "extent_m", document.get("extent_m"), 1)
    if np.any(extent <= 0):
        raise SearchModelError(f"{file}: extent_m: must be positive, got {extent.tolist()}")
    d = len(extent)
    positions = _mixture(file, "positions", document.get("positions"), d)
    force = _mixture(file, "force", document.get("force"), d + 3)
    return SearchModel(positions, force, extent, dict(document.get("meta") or {}))


def _array(file: Path, name: str, value, ndim: int) -> np.ndarray:
    try:
        array = np.asarray(value, float)
    except (TypeError, ValueError):
        raise SearchModelError(f"{file}: {name}: not numbers") from None
    if array.ndim != ndim or array.size == 0 or not np.all(np.isfinite(array)):
        raise SearchModelError(f"{file}: {name}: expected a finite {ndim}-D array, got shape {array.shape}")
    return array


def _mixture(file: Path, name: str, value, n: int) -> Mixture:
    if not isinstance(value, dict):
        raise SearchModelError(f"{file}: {name}: missing")
    weights = _array(file, f"{name}.weights", value.get("weights"), 1)
    means = _array(file, f"{name}.means", value.get("means"), 2)
    covariances = _array(file, f"{name}.covariances", value.get("covariances"), 3)
    k = len(weights)
    if means.shape != (k, n) or covariances.shape != (k, n, n):
        raise SearchModelError(f"{file}: {name}: expected {k} components of dimension {n}, got means {means.shape} "
                               f"and covariances {covariances.shape}")
    if np.any(weights < 0) or not math.isclose(float(weights.sum()), 1.0, abs_tol=1e-6):
        raise SearchModelError(f"{file}: {name}.weights: must be non-negative and sum to 1")
    for c in covariances:
        if not np.allclose(c, c.T, atol=1e-12) or np.linalg.eigvalsh(c).min() <= 0:
            raise SearchModelError(f"{file}: {name}.covariances: must be symmetric positive definite")
    return Mixture(weights, means, covariances, {int(k): float(v) for k, v in (value.get("bic") or {}).items()})
