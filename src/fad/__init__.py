"""fad: monadic, functional automatic differentiation for numpy.

A differentiable function is a value ``a -> M b``: called on a point it returns the value
and the derivative there. ``bind`` is the chain rule; forward and reverse mode read the
same recorded linear maps.

Examples:
    >>> import fad
    >>> from fad.prims import add, exp, multiply, reciprocal
    >>> sigmoid = multiply(-1.0) >> exp >> add(1.0) >> reciprocal
    >>> v, d = sigmoid(0.0)
    >>> print(v, float(d))
    0.5 0.25
"""

from . import kernel as kernel
from . import prims as prims
from ._blocks import checkpoint as checkpoint
from ._blocks import fold as fold
from ._blocks import map as map
from ._blocks import scan as scan
from ._blocks import unfold as unfold
from ._blocks import zip_with as zip_with
from ._core import Dual as Dual
from ._core import Fn as Fn
from ._core import bind as bind
from ._core import comp as comp
from ._core import const as const
from ._core import identity as identity
from ._core import pipe as pipe
from ._core import unit as unit
from ._errors import DomainError as DomainError
from ._errors import MixedInputsError as MixedInputsError
from ._errors import ShapeError as ShapeError
from ._errors import debug_nans as debug_nans
from ._linear import LinearMap as LinearMap
from ._structure import fork as fork
from ._structure import fst as fst
from ._structure import lift as lift
from ._structure import par as par
from ._structure import proj as proj
from ._structure import snd as snd
from ._transforms import derivative as derivative
from ._transforms import grad as grad
from ._transforms import hessian as hessian
from ._transforms import hvp as hvp
from ._transforms import jacfwd as jacfwd
from ._transforms import jacobian as jacobian
from ._transforms import jacrev as jacrev
from ._transforms import jvp as jvp
from ._transforms import linearize as linearize
from ._transforms import value_and_derivative as value_and_derivative
from ._transforms import value_and_grad as value_and_grad
from ._transforms import vjp as vjp
from ._tree import register_container as register_container
from .prims import abs as abs
from .prims import add as add
from .prims import affine as affine
from .prims import clip as clip
from .prims import concatenate as concatenate
from .prims import cos as cos
from .prims import cross_entropy as cross_entropy
from .prims import dot as dot
from .prims import erf as erf
from .prims import exp as exp
from .prims import expm1 as expm1
from .prims import log as log
from .prims import log1p as log1p
from .prims import logsumexp as logsumexp
from .prims import matmul as matmul
from .prims import max as max
from .prims import mean as mean
from .prims import min as min
from .prims import mse as mse
from .prims import multiply as multiply
from .prims import neg as neg
from .prims import norm as norm
from .prims import power as power
from .prims import primitive as primitive
from .prims import reciprocal as reciprocal
from .prims import relu as relu
from .prims import reshape as reshape
from .prims import sigmoid as sigmoid
from .prims import sin as sin
from .prims import softmax as softmax
from .prims import softplus as softplus
from .prims import sqrt as sqrt
from .prims import square as square
from .prims import stack as stack
from .prims import stop_gradient as stop_gradient
from .prims import sum as sum
from .prims import tan as tan
from .prims import tanh as tanh
from .prims import transpose as transpose
from .prims import where as where

# abs, sum, min, max and map are public too, but left out of __all__ so that a star
# import does not shadow Python's builtins.
__all__ = [
    "DomainError", "Dual", "Fn", "LinearMap", "MixedInputsError", "ShapeError", "add",
    "affine", "bind", "checkpoint", "clip", "comp", "concatenate", "const", "cos",
    "cross_entropy", "debug_nans", "derivative", "dot", "erf", "exp", "expm1", "fold",
    "fork", "fst", "grad", "hessian", "hvp", "identity", "jacfwd", "jacobian", "jacrev",
    "jvp", "kernel", "lift", "linearize", "log", "log1p", "logsumexp", "matmul", "mean",
    "mse", "multiply", "neg", "norm", "par", "pipe", "power", "primitive", "prims", "proj",
    "reciprocal", "register_container", "relu", "reshape", "scan", "sigmoid", "sin", "snd",
    "softmax", "softplus", "sqrt", "square", "stack", "stop_gradient", "tan", "tanh",
    "transpose", "unfold", "unit", "value_and_derivative", "value_and_grad", "vjp", "where",
    "zip_with",
]  # fmt: skip
