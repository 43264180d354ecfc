"""fad's primitives: elementwise, parameterised, reductions and linear algebra.

Every primitive is an ``Fn`` of one step, so it composes (``exp >> log``), and is also
callable in pointed code (``fad.sin(x)``).
"""

from ._declare import Domain as Domain
from ._declare import primitive as primitive
from .elementwise import abs as abs
from .elementwise import cos as cos
from .elementwise import erf as erf
from .elementwise import exp as exp
from .elementwise import expm1 as expm1
from .elementwise import log as log
from .elementwise import log1p as log1p
from .elementwise import neg as neg
from .elementwise import reciprocal as reciprocal
from .elementwise import relu as relu
from .elementwise import sigmoid as sigmoid
from .elementwise import sin as sin
from .elementwise import softplus as softplus
from .elementwise import sqrt as sqrt
from .elementwise import square as square
from .elementwise import tan as tan
from .elementwise import tanh as tanh
from .parametric import add as add
from .parametric import affine as affine
from .parametric import clip as clip
from .parametric import multiply as multiply
from .parametric import power as power

__all__ = [
    "Domain", "abs", "add", "affine", "clip", "cos", "erf", "exp", "expm1", "log", "log1p",
    "multiply", "neg", "power", "primitive", "reciprocal", "relu", "sigmoid", "sin",
    "softplus", "sqrt", "square", "tan", "tanh",
]  # fmt: skip
