"""Pytrees: flatten nested containers to a list of leaves and back (layer 0).

Tuples, lists, dicts, ``NamedTuple``s and dataclasses are containers; anything else is a
leaf. ``register_container`` admits a user's own type. Gradients are rebuilt with
``unflatten``, so they come back in exactly the structure of the input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from typing import Any, Final, final

import numpy as np

__all__ = ["Tree", "flatten", "leaf_tree", "register_container", "tree_map", "unflatten"]

Flattener = Callable[[Any], tuple[Iterable[Any], Hashable]]
Unflattener = Callable[[Hashable, tuple[Any, ...]], Any]

_REGISTRY: dict[type, tuple[Flattener, Unflattener]] = {}


def register_container(type_: type, flatten: Flattener, unflatten: Unflattener) -> None:
    """Admit a user's container type as a pytree node.

    Args:
        type_: the container class.
        flatten: ``obj -> (children, aux)``, ``aux`` hashable data needed to rebuild.
        unflatten: ``(aux, children) -> obj``.

    Examples:
        >>> import fad
        >>> class Pair:
        ...     def __init__(self, a, b):
        ...         self.a, self.b = a, b
        >>> fad.register_container(Pair, lambda p: ((p.a, p.b), None),
        ...                        lambda aux, ch: Pair(*ch))
        >>> g = fad.grad(lambda p: p.a * p.b)(Pair(3.0, 4.0))
        >>> print(g.a, g.b)
        4.0 3.0

    See also:
        grad, jacobian
    """
    _REGISTRY[type_] = (flatten, unflatten)


@final
class Tree:
    """The shape of a pytree without its leaves: how to rebuild it."""

    __slots__ = ("children", "kind", "meta", "size")

    def __init__(self, kind: Any, meta: Hashable, children: tuple[Tree, ...]) -> None:
        self.kind = kind  # None for a leaf, else the container type
        self.meta = meta
        self.children = children
        self.size: int = 1 if kind is None else sum(c.size for c in children)

    @property
    def is_leaf(self) -> bool:
        return self.kind is None

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Tree)
            and self.kind is other.kind
            and self.meta == other.meta
            and self.children == other.children
        )

    def __hash__(self) -> int:
        return hash((id(self.kind), self.meta, self.children))

    def __repr__(self) -> str:
        if self.kind is None:
            return "*"
        name = getattr(self.kind, "__name__", str(self.kind))
        return f"{name}({', '.join(map(repr, self.children))})"


_LEAF: Final = Tree(None, None, ())


def leaf_tree() -> Tree:
    """The tree of a single leaf."""
    return _LEAF


def _is_namedtuple(x: Any) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields")


def flatten(x: Any) -> tuple[list[Any], Tree]:
    """Flatten ``x`` into its leaves, in a fixed order, and its ``Tree``.

    Examples:
        >>> leaves, tree = flatten((1.0, {"a": 2.0, "b": [3.0]}))
        >>> leaves
        [1.0, 2.0, 3.0]
        >>> unflatten(tree, [4.0, 5.0, 6.0])
        (4.0, {'a': 5.0, 'b': [6.0]})
    """
    leaves: list[Any] = []
    return leaves, _flatten(x, leaves)


# Types that are always leaves, checked first: most leaves are numbers and arrays.
_LEAVES = frozenset({float, int, np.ndarray, np.float64, np.float32, bool, complex, str})


def _flatten(x: Any, leaves: list[Any]) -> Tree:
    t = type(x)
    if t in _LEAVES or getattr(t, "__fad_leaf__", False):
        leaves.append(x)
        return _LEAF
    if t is tuple or t is list:
        return Tree(t, len(x), tuple(_flatten(c, leaves) for c in x))
    if t is dict:
        keys = tuple(x)
        return Tree(dict, keys, tuple(_flatten(x[k], leaves) for k in keys))
    if t in _REGISTRY:
        children, meta = _REGISTRY[t][0](x)
        return Tree(t, meta, tuple(_flatten(c, leaves) for c in children))
    if _is_namedtuple(x):
        return Tree(t, None, tuple(_flatten(c, leaves) for c in x))
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        names = tuple(f.name for f in dataclasses.fields(x) if f.init)
        return Tree(t, names, tuple(_flatten(getattr(x, n), leaves) for n in names))
    leaves.append(x)
    return _LEAF


def unflatten(tree: Tree, leaves: Iterable[Any]) -> Any:
    """Rebuild a pytree of shape ``tree`` from ``leaves`` (inverse of ``flatten``)."""
    if tree.kind is None and type(leaves) is list:
        return leaves[0]  # a single leaf: the common case of every transform call
    it = iter(leaves)
    out = _unflatten(tree, it)
    return out


def _unflatten(tree: Tree, it: Any) -> Any:
    kind = tree.kind
    if kind is None:
        return next(it)
    children = [_unflatten(c, it) for c in tree.children]
    if kind is tuple or kind is list:
        return kind(children)
    if kind is dict:
        return dict(zip(tree.meta, children, strict=True))  # type: ignore[call-overload]
    if kind in _REGISTRY:
        return _REGISTRY[kind][1](tree.meta, tuple(children))
    if tree.meta is None:  # NamedTuple
        return kind(*children)
    return kind(**dict(zip(tree.meta, children, strict=True)))  # type: ignore[call-overload]


def tree_map(f: Callable[..., Any], x: Any, *rest: Any) -> Any:
    """Apply ``f`` leaf by leaf to one or more pytrees of the same structure."""
    leaves, tree = flatten(x)
    others = [flatten(r)[0] for r in rest]
    return unflatten(tree, [f(*args) for args in zip(leaves, *others, strict=True)])
