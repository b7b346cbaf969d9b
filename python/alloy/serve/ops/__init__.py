"""The op interface models are written against, and its numpy reference implementation."""
from .base import Array, KVBuffer, Ops, RopeStyle, TensorLike
from .reference import ReferenceOps

__all__ = ["Array", "KVBuffer", "Ops", "ReferenceOps", "RopeStyle", "TensorLike"]
