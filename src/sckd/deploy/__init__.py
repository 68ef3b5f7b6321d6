"""Running a trained student outside training: prediction on any radar input, ONNX export.

Sits above ``engine`` (it loads checkpoints with the engine's loader) and below ``cli``.
"""
