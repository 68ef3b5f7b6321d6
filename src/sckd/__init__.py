"""sckd: semi-supervised cross-modality knowledge distillation for 4D radar detection."""

__version__ = "0.1.0"
