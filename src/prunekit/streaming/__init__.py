"""Post-training pruning of a Hugging Face checkpoint directory that never holds more than one block in memory.

    prunekit.prune("llama-dir", 0.5, criterion="wanda", batches=calibration, out="llama-dir-wanda50")

The result is an ordinary sharded safetensors checkpoint (`from_pretrained` loads it), equal bit for bit to
pruning the loaded model in memory; a killed run resumes after its last finished block. See `driver`.
"""

from __future__ import annotations

from prunekit.streaming.driver import prune_checkpoint

__all__ = ["prune_checkpoint"]
