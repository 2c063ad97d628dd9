"""Learn and infer: the multimodal DeepSeek-style backbone, its heads, adaptation and export.

Pure torch. No I/O beyond loading and saving its own weights.
"""
