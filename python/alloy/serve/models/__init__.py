"""Model architectures, one file each, written against ``alloy.serve.ops``."""
from __future__ import annotations

from ..gguf.errors import GGUFError
from ..gguf.reader import GGUFFile
from ..ops.base import Ops
from .base import Model
from .config import ModelConfig
from .gemma3 import Gemma3Model
from .llama import LlamaModel
from .qwen2 import Qwen2Model
from .qwen3 import Qwen3Model

ARCHITECTURES: dict[str, type[Model]] = {
    cls.arch: cls for cls in (LlamaModel, Qwen2Model, Qwen3Model, Gemma3Model)
}

__all__ = ["ARCHITECTURES", "Gemma3Model", "LlamaModel", "Model", "ModelConfig", "Qwen2Model", "Qwen3Model",
           "model_from_gguf"]


def model_from_gguf(file: GGUFFile, ops: Ops | None = None) -> Model:
    """The model in ``file``, with weights prepared by ``ops`` (default: numpy reference)."""
    cls = ARCHITECTURES.get(file.arch)
    if cls is None:
        raise GGUFError(f"architecture {file.arch!r} is not supported "
                        f"(supported: {', '.join(sorted(ARCHITECTURES))})", path=file.path)
    return cls.from_gguf(file, ops)
