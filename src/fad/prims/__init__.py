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
from .linalg import dot as dot
from .linalg import matmul as matmul
from .losses import cross_entropy as cross_entropy
from .losses import mse as mse
from .parametric import add as add
from .parametric import affine as affine
from .parametric import clip as clip
from .parametric import multiply as multiply
from .parametric import power as power
from .reductions import logsumexp as logsumexp
from .reductions import max as max
from .reductions import mean as mean
from .reductions import min as min
from .reductions import norm as norm
from .reductions import softmax as softmax
from .reductions import sum as sum
from .structural import concatenate as concatenate
from .structural import reshape as reshape
from .structural import stack as stack
from .structural import stop_gradient as stop_gradient
from .structural import transpose as transpose
from .structural import where as where

# abs, sum, min and max are public too, but left out of __all__ so that a star
# import does not shadow Python's builtins.
__all__ = [
    "Domain", "add", "affine", "clip", "concatenate", "cos", "cross_entropy", "dot", "erf",
    "exp", "expm1", "log", "log1p", "logsumexp", "matmul", "mean", "mse", "multiply", "neg",
    "norm", "power", "primitive", "reciprocal", "relu", "reshape", "sigmoid", "sin",
    "softmax", "softplus", "sqrt", "square", "stack", "stop_gradient", "tan", "tanh",
    "transpose", "where",
]  # fmt: skip
