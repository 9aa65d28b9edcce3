"""SAM and ASAM: the sharpness-aware perturbation, as an option of the train step.

Sharpness-aware minimization (Foret et al., ICLR 2021) takes every step with the gradient
at a perturbed point: with ``g`` the batch gradient at ``w``, it ascends to ``w + e(w)``,
takes the gradient there, and the base optimizer (SGD, Adam, ...) applies that gradient
at ``w``. Adaptive SAM (ASAM, Kwon et al., ICML 2021) scales the perturbation element-wise
by the weights' magnitude, which makes it invariant to rescaling a layer's weights::

    SAM:   e = rho * g / ||g||
    ASAM:  e = rho * T_w^2 g / ||T_w g||,   T_w = |w| + eta (weights), 1 (biases)

One mechanism, parametrized: SAM is ASAM with ``T_w = 1``. `SAM` holds the options and
computes ``e``; `bsi_keras.train_step` runs the two gradient evaluations
(``StepOptions(sam=SAM(...))``), so any model, base optimizer and schedule can use it.

Defaults and their sources:

- SAM ``rho = 0.05``: the value of Foret et al.'s reference code's README
  (google-research/sam, ``--sam_rho 0.05``), the default of davda54/sam
  (``SAM(..., rho=0.05)``) and of Keras 2's ``SharpnessAwareMinimization(rho=0.05)``, and
  SamsungLabs/ASAM's README setting for SAM on CIFAR-10.
- ASAM ``rho = 0.5``, ``eta = 0.01``: the official code, SamsungLabs/ASAM ``asam.py``
  (``ASAM(optimizer, model, rho=0.5, eta=0.01)``), and its README's CIFAR-10 setting
  (rho 0.5). Its ``example_cifar.py`` command line defaults to ``--eta 0.0``; davda54/sam's
  adaptive mode has no eta at all (``T_w = |w|``, biases included).
- The norm's ``+ 1e-12`` guard: davda54/sam and Keras 2 (SamsungLabs/ASAM adds 1e-16).

Which variables count as biases (unscaled by ASAM): the official ASAM scales every PyTorch
parameter whose name contains ``weight`` -- kernels, embeddings and the batch-norm scale
(PyTorch's BN ``weight`` is gamma) -- and leaves the ``bias`` parameters (dense and
convolution biases, BN's beta) unscaled (SamsungLabs/ASAM ``asam.py``; davda54/sam issue
#81). Keras names these variables ``kernel`` / ``embeddings`` / ``gamma`` and ``bias`` /
``beta``, so `is_bias` goes by the name: a variable whose name ends in ``bias`` or ``beta``
is a bias. The rank is no guide: a BN gamma is 1-D but scaled in the official code.

Example:

>>> from keras import ops
>>> sam = SAM(rho=0.5)
>>> e = sam.perturbation([ops.convert_to_tensor([3.0, 4.0])], [ops.zeros(2)], [False])
>>> [round(float(v), 3) for v in ops.convert_to_numpy(e[0])]
[0.3, 0.4]
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import keras
from keras import ops

from bsi_keras.optimizers import split_name

SAM_RHO = 0.05  # Foret et al.; davda54/sam; Keras 2
ASAM_RHO = 0.5  # SamsungLabs/ASAM asam.py and README (CIFAR-10)
ASAM_ETA = 0.01  # SamsungLabs/ASAM asam.py
NORM_EPSILON = 1e-12  # davda54/sam and Keras 2's guard against a zero gradient
BIAS_SUFFIXES = ("bias", "beta")


@dataclass(frozen=True)
class SAM:
    """Options of a sharpness-aware step (SAM, or ASAM with ``adaptive=True``).

    Args:
        rho: the neighbourhood radius; None: the variant's default (SAM 0.05, ASAM 0.5).
        adaptive: ASAM's element-wise scaling ``T_w = |w| + eta`` of the weights.
        eta: ASAM's offset in ``T_w`` (ignored by SAM).
        m: m-sharpness: split the logical batch into groups of ``m`` examples (the last
            one smaller), each perturbed with its own gradient, and average the groups'
            gradients (Foret et al. section 4.1; Google's reference does it per
            accelerator). None: one perturbation from the whole batch's gradient.
            A batch of at most ``m`` examples is one group, i.e. plain SAM.

    Example:

    >>> SAM(adaptive=True)
    SAM(rho=0.5, adaptive=True, eta=0.01, m=None)
    """

    rho: float | None = None
    adaptive: bool = False
    eta: float = ASAM_ETA
    m: int | None = None

    def __post_init__(self) -> None:
        if self.rho is None:
            object.__setattr__(self, "rho", ASAM_RHO if self.adaptive else SAM_RHO)
        if not (math.isfinite(self.rho) and self.rho > 0):
            raise ValueError(f"rho must be a positive number, got {self.rho}")
        if not (math.isfinite(self.eta) and self.eta >= 0):
            raise ValueError(f"eta must be >= 0, got {self.eta}")
        if self.m is not None and self.m < 1:
            raise ValueError(f"m must be a positive integer, got {self.m}")

    def scaled(self, variables: Sequence[keras.Variable]) -> list[bool]:
        """Which variables ASAM scales by ``T_w`` (none for SAM; see `is_bias`).

        Example:

        >>> from bsi_keras.models import get_model
        >>> SAM(adaptive=True).scaled(get_model("mnist_cnn").trainable_variables)
        [True, False, True, False, True, False]
        """
        return [self.adaptive and not is_bias(v) for v in variables]

    def perturbation(
        self, grads: Sequence[Any], weights: Sequence[Any], scaled: Sequence[bool]
    ) -> list[Any]:
        """The ascent ``e(w) = rho * T_w^2 g / (||T_w g|| + 1e-12)``.

        Args:
            grads: the gradient at ``w``, one tensor per trainable variable.
            weights: ``w``, the trainable values.
            scaled: per variable, whether ``T_w = |w| + eta`` applies (else ``T_w = 1``);
                `scaled` gives it.

        Returns:
            ``e``, one tensor per trainable variable.

        Example:

        >>> from keras import ops
        >>> asam = SAM(rho=1.0, adaptive=True, eta=0.0)
        >>> w = [ops.convert_to_tensor([2.0]), ops.convert_to_tensor([5.0])]
        >>> g = [ops.convert_to_tensor([1.0]), ops.convert_to_tensor([1.0])]
        >>> e = asam.perturbation(g, w, [True, False])  # T g = (2, 1), T^2 g = (4, 1)
        >>> [round(float(ops.convert_to_numpy(v)[0]), 4) for v in e]
        [1.7889, 0.4472]
        """
        scales = [
            ops.add(ops.abs(w), ops.cast(self.eta, w.dtype)) if s else None
            for w, s in zip(weights, scaled)
        ]
        scaled_grads = [g if t is None else ops.multiply(g, t) for g, t in zip(grads, scales)]
        norm = ops.sqrt(sum(ops.sum(ops.square(g)) for g in scaled_grads))
        factor = self.rho / (norm + NORM_EPSILON)
        return [
            ops.multiply(ops.cast(factor, g.dtype), g if t is None else ops.multiply(g, t))
            for g, t in zip(scaled_grads, scales)
        ]


def is_bias(variable: keras.Variable) -> bool:
    """Whether ASAM leaves ``variable`` unscaled: its name ends in ``bias`` or ``beta``.

    The Keras names of the parameters the official ASAM calls ``bias`` (see the module
    docstring).

    Example:

    >>> import keras
    >>> layer = keras.layers.Dense(2)
    >>> layer.build((None, 3))
    >>> [is_bias(v) for v in layer.trainable_variables]
    [False, True]
    """
    return variable.name.endswith(BIAS_SUFFIXES)


def from_name(
    name: str, rho: float | None = None, eta: float | None = None, m: int | None = None
) -> SAM | None:
    """The `SAM` options an optimizer name asks for (None for a plain name).

    Args:
        name: an optimizer name, e.g. ``sam_sgd`` or ``asam_adam``.
        rho, eta, m: the options; None: the variant's defaults.

    Returns:
        The options, or None when ``name`` has no ``sam_`` / ``asam_`` prefix.

    Example:

    >>> from_name("asam_momentum", m=32)
    SAM(rho=0.5, adaptive=True, eta=0.01, m=32)
    >>> from_name("adam") is None
    True
    """
    _, variant = split_name(name)
    if variant is None:
        return None
    return SAM(rho=rho, adaptive=variant == "asam", eta=ASAM_ETA if eta is None else eta, m=m)
