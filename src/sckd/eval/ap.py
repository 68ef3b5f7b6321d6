"""KITTI-style precision curves: greedy matching, score-threshold sampling, R11 / R40 AP.

This follows the procedure of the KITTI devkit as the official VoD tool runs it:

1. Per frame, GT objects are visited in file order; each takes the unassigned detection of
   highest score whose overlap is strictly above the threshold. The scores of true positives
   (valid GT matched by a valid detection) are the candidate thresholds.
2. Candidate scores, sorted descending, are thinned to at most one per 1/40 of recall
   (:func:`sample_thresholds`), so tiny sets score oddly (1 object -> one point -> 9.09 AP).
3. For each sampled threshold, detections scoring below it are dropped and every frame is
   matched again, now taking the detection of **largest overlap** (a valid detection beats an
   ignored one); this gives TP / FP / FN and the orientation similarity.
4. precision[i] = TP / (TP + FP) at threshold i (zero beyond the last), made non-increasing
   from the right; AP|R11 = mean of points 0, 4, ..., 40; AP|R40 = mean of points 1..40.

Ignore flags per object: GT 0 = counted, 1 = ignored (matching it costs nothing), -1 = another
class (skipped). Detection 0 = counted, 1 = ignored (may still absorb a GT), -1 = other class.
"""

from __future__ import annotations

import math

import numba
import numpy as np

N_SAMPLE_PTS = 41
_NO_DET = -10000000.0


@numba.njit(cache=True)
def _frame_stats(ov, base, ng, nd, gt0, dt0, ig, idt, scores, gt_alpha, dt_alpha, dt_bbox,
                 dc_bbox, dc0, ndc, min_overlap, thresh, compute_fp, compute_aos, assigned, tp_scores):
    """Match one frame; returns (tp, fp, fn, similarity, number of TP scores written)."""
    for jj in range(nd):
        assigned[jj] = False
    tp, fp, fn, n_tp = 0, 0, 0, 0
    similarity = 0.0
    for ii in range(ng):
        i = gt0 + ii
        if ig[i] == -1:
            continue
        det = -1
        valid = _NO_DET
        max_ov = 0.0
        took_ignored = False
        for jj in range(nd):
            j = dt0 + jj
            if idt[j] == -1 or assigned[jj]:
                continue
            if compute_fp and scores[j] < thresh:
                continue
            o = ov[base + jj * ng + ii]
            if not compute_fp:
                if o > min_overlap and scores[j] > valid:
                    det, valid = jj, scores[j]
            elif o > min_overlap and (o > max_ov or took_ignored) and idt[j] == 0:
                max_ov, det, valid, took_ignored = o, jj, 1.0, False
            elif o > min_overlap and valid == _NO_DET and idt[j] == 1:
                det, valid, took_ignored = jj, 1.0, True
        if valid == _NO_DET:
            if ig[i] == 0:
                fn += 1
        elif ig[i] == 1 or idt[dt0 + det] == 1:
            assigned[det] = True
        else:
            tp += 1
            tp_scores[n_tp] = scores[dt0 + det]
            n_tp += 1
            if compute_aos:
                similarity += (1.0 + math.cos(gt_alpha[i] - dt_alpha[dt0 + det])) / 2.0
            assigned[det] = True
    if compute_fp:
        for jj in range(nd):
            j = dt0 + jj
            if not (assigned[jj] or idt[j] != 0 or scores[j] < thresh):
                fp += 1
        # Detections on DontCare areas (2D only) are not false positives.
        for d in range(dc0, dc0 + ndc):
            for jj in range(nd):
                j = dt0 + jj
                if assigned[jj] or idt[j] != 0 or scores[j] < thresh:
                    continue
                iw = min(dt_bbox[j, 2], dc_bbox[d, 2]) - max(dt_bbox[j, 0], dc_bbox[d, 0])
                if iw > 0:
                    ih = min(dt_bbox[j, 3], dc_bbox[d, 3]) - max(dt_bbox[j, 1], dc_bbox[d, 1])
                    if ih > 0:
                        area = (dt_bbox[j, 2] - dt_bbox[j, 0]) * (dt_bbox[j, 3] - dt_bbox[j, 1])
                        if iw * ih / area > min_overlap:
                            assigned[jj] = True
                            fp -= 1
        if compute_aos and tp == 0 and fp == 0:
            similarity = -1.0
    return tp, fp, fn, similarity, n_tp


@numba.njit(cache=True)
def _sample_sorted(s, num_gt):
    out = np.empty(s.shape[0])
    n = 0
    current = 0.0
    for i in range(s.shape[0]):
        l_recall = (i + 1) / num_gt
        last = i == s.shape[0] - 1
        r_recall = l_recall if last else (i + 2) / num_gt
        if (r_recall - current) < (current - l_recall) and not last:
            continue
        out[n] = s[i]
        n += 1
        current += 1 / (N_SAMPLE_PTS - 1.0)
    return out[:n]


def sample_thresholds(scores: np.ndarray, num_gt: int) -> np.ndarray:
    """KITTI's score thresholds: descending TP scores kept where they best approach the next
    1/40 step of recall (the last score is always kept)."""
    s = np.ascontiguousarray(np.sort(np.asarray(scores, np.float64))[::-1])
    return _sample_sorted(s, int(num_gt)) if len(s) else np.zeros(0)


@numba.njit(cache=True)
def _tp_scores(ov, ov_off, gt_off, dt_off, ig, idt, scores, gt_alpha, dt_alpha, dt_bbox, dc_bbox,
               dc_off, min_overlap):
    """Pass 1: scores of the true positives when each GT takes its highest-scoring match."""
    n_frames = gt_off.shape[0] - 1
    max_dt = 1
    for f in range(n_frames):
        max_dt = max(max_dt, dt_off[f + 1] - dt_off[f])
    assigned = np.zeros(max_dt, dtype=np.bool_)
    found = np.empty(max(1, ig.shape[0]))
    n_found = 0
    for f in range(n_frames):
        ng, nd = gt_off[f + 1] - gt_off[f], dt_off[f + 1] - dt_off[f]
        r = _frame_stats(ov, ov_off[f], ng, nd, gt_off[f], dt_off[f], ig, idt, scores, gt_alpha,
                         dt_alpha, dt_bbox, dc_bbox, dc_off[f], 0, min_overlap, 0.0, False, False,
                         assigned, found[n_found:])
        n_found += r[4]
    return found[:n_found]


def precision_curve(ov, ov_off, gt_off, dt_off, ig, idt, scores, gt_alpha, dt_alpha, dt_bbox,
                    dc_bbox, dc_off, min_overlap, compute_aos, num_valid_gt):
    """(precision (41,), orientation similarity (41,)) over all frames for one class."""
    args = (ov, ov_off, gt_off, dt_off, ig, idt, scores, gt_alpha, dt_alpha, dt_bbox, dc_bbox, dc_off,
            float(min_overlap))
    found = _tp_scores(*args)
    if len(found) == 0:
        return np.zeros(N_SAMPLE_PTS), np.zeros(N_SAMPLE_PTS)
    return _pr_curve(*args, sample_thresholds(found, num_valid_gt), bool(compute_aos))


@numba.njit(cache=True)
def _pr_curve(ov, ov_off, gt_off, dt_off, ig, idt, scores, gt_alpha, dt_alpha, dt_bbox, dc_bbox,
              dc_off, min_overlap, thresholds, compute_aos):
    """Pass 2 at every sampled threshold -> non-increasing precision and AOS curves."""
    n_frames = gt_off.shape[0] - 1
    max_dt = 1
    for f in range(n_frames):
        max_dt = max(max_dt, dt_off[f + 1] - dt_off[f])
    assigned = np.zeros(max_dt, dtype=np.bool_)
    found = np.empty(max(1, ig.shape[0]))
    prec = np.zeros(N_SAMPLE_PTS)
    aos = np.zeros(N_SAMPLE_PTS)
    n_t = min(thresholds.shape[0], N_SAMPLE_PTS)
    pr = np.zeros((n_t, 4))
    for f in range(n_frames):
        ng, nd = gt_off[f + 1] - gt_off[f], dt_off[f + 1] - dt_off[f]
        ndc = dc_off[f + 1] - dc_off[f]
        for t in range(n_t):
            tp, fp, fn, sim, _ = _frame_stats(ov, ov_off[f], ng, nd, gt_off[f], dt_off[f], ig, idt,
                                              scores, gt_alpha, dt_alpha, dt_bbox, dc_bbox, dc_off[f],
                                              ndc, min_overlap, thresholds[t], True, compute_aos,
                                              assigned, found)
            pr[t, 0] += tp
            pr[t, 1] += fp
            pr[t, 2] += fn
            if sim != -1.0:
                pr[t, 3] += sim
    for t in range(n_t):
        denom = pr[t, 0] + pr[t, 1]
        # 0 / 0 (every kept detection absorbed by ignored GT) is NaN, as in the official tool.
        prec[t] = pr[t, 0] / denom if denom > 0 else np.nan
        aos[t] = pr[t, 3] / denom if denom > 0 else np.nan
    for t in range(N_SAMPLE_PTS - 2, -1, -1):  # non-increasing from the right; NaN spreads
        prec[t] = _nanmax(prec[t], prec[t + 1])
        aos[t] = _nanmax(aos[t], aos[t + 1])
    return prec, aos


@numba.njit(cache=True, inline="always")
def _nanmax(a, b):
    return np.nan if (math.isnan(a) or math.isnan(b)) else max(a, b)


def ap_r11(curve: np.ndarray) -> float:
    """Mean of the curve at points 0, 4, ..., 40, in percent."""
    total = 0.0
    for i in range(0, N_SAMPLE_PTS, 4):
        total = total + float(curve[i])
    return total / 11 * 100


def ap_r40(curve: np.ndarray) -> float:
    """Mean of the curve at points 1, ..., 40, in percent."""
    total = 0.0
    for i in range(1, N_SAMPLE_PTS):
        total = total + float(curve[i])
    return total / 40 * 100
