"""Model files: GGUF import/export, quantization, the embedded default and the version registry."""
