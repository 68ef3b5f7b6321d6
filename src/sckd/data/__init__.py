"""Datasets (VoD, KITTI-layout radar sets, the synthetic world), calib, labels, augmentation."""
