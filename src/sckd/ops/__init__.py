"""Tensor geometry and kernels: boxes, rotated IoU, NMS, voxelization, sparse convolution."""
