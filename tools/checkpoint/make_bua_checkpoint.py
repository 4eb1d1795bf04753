#!/usr/bin/python3
"""Writes a checkpoint with the layout of the real bottom-up-attention `faster_rcnn_from_caffe.pkl`
(or of `faster_rcnn_from_caffe_attr.pkl`) filled with seeded random values, for tests and
benchmarks: the real file is about 255 MB and cannot be fetched on the build machines.

    /usr/bin/python3 tools/checkpoint/make_bua_checkpoint.py --keys KEYS.tsv --out X.pkl
        [--protocol 2|3|4] [--container dict|ordered] [--matching-heuristics absent|true|false]
        [--attr] [--permute-anchors 11,10,...] [--seed N]
    /usr/bin/python3 tools/checkpoint/make_bua_checkpoint.py --caffe2-blobs --out X.pkl

KEYS.tsv is `shared/reference/bua-checkpoint/keys.tsv` (name, shape `AxBxC`, dtype; state-dict
order). The file is what detectron2's model zoo pickles hold, written by `pickle.dump`:
`{"model": {name: numpy float32 array}, "__author__": str}` (protocol 3 by default, as Python
3.6/3.7 wrote it). `--attr` appends the attribute head of the `_attr` variant (536 tensors).
`--caffe2-blobs` writes a small Detectron 1 / Caffe2 `{"blobs": ...}` pickle instead.

Values: He-normal convolutions, frozen batch norms near identity with the last one of each
residual branch damped (so 33 bottleneck blocks stay finite), the stem scaled for raw pixel
values, heads wide enough that scores are not ties: the RPN yields its 300 proposals and every
probability is finite. The anchor buffer holds the Caffe model's 12 anchors in py-faster-rcnn's
ratio-major order; `--permute-anchors` reorders its rows (nothing else changes).
"""
import argparse
import collections
import math
import pickle
import sys

import numpy as np

ANCHOR_BUFFER = 'proposal_generator.anchor_generator.cell_anchors.0'
# The attribute variant's extra tensors (py-bottom-up-attention FastRCNNOutputLayers, use_attr):
# class embedding 1601 x 256, fc 2048 + 256 -> 512, 400 attributes + 1.
ATTR_KEYS = [
    ('roi_heads.box_predictor.cls_embedding.weight', (1601, 256)),
    ('roi_heads.box_predictor.fc_attr.weight', (512, 2304)),
    ('roi_heads.box_predictor.fc_attr.bias', (512,)),
    ('roi_heads.box_predictor.attr_score.weight', (401, 512)),
    ('roi_heads.box_predictor.attr_score.bias', (401,)),
]


def caffe_anchors(base=16, ratios=(0.5, 1.0, 2.0), scales=(4, 8, 16, 32)):
    """py-faster-rcnn's generate_anchors (ratio-major, inclusive corners) moved by one pixel, which
    gives the converted buffer's corners [-37,-15,54,32] ... [-167,-343,184,360]."""
    ctr = 0.5 * (base - 1)
    out = []
    for r in ratios:
        ws = round(math.sqrt(base * base / r))
        hs = round(ws * r)
        for s in scales:
            w, h = ws * s, hs * s
            out.append([ctr - 0.5 * (w - 1) + 1, ctr - 0.5 * (h - 1) + 1, ctr + 0.5 * (w - 1) + 1, ctr + 0.5 * (h - 1) + 1])
    a = np.array(out, dtype=np.float32)
    assert a[0].tolist() == [-37, -15, 54, 32] and a[-1].tolist() == [-167, -343, 184, 360], a
    return a


def read_keys(path):
    keys = []
    with open(path) as f:
        header = f.readline().rstrip('\n').split('\t')
        if header[:2] != ['name', 'shape']:
            sys.exit('%s: expected a header "name<TAB>shape<TAB>dtype"' % path)
        for line in f:
            name, shape, dtype = line.rstrip('\n').split('\t')
            if dtype != 'float32':
                sys.exit('%s: %s has dtype %s' % (path, name, dtype))
            keys.append((name, tuple(int(x) for x in shape.split('x'))))
    return keys


def fill(name, shape, rng):
    """One tensor's seeded values (see the module docstring for the scheme)."""
    n = int(np.prod(shape))
    fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
    u = lambda: rng.random_sample(n)
    g = lambda: rng.standard_normal(n)
    if name.endswith('norm.weight'):
        v = 0.2 + 0.1 * u() if '.conv3.' in name else 0.8 + 0.4 * u()
    elif name.endswith('norm.bias') or name.endswith('running_mean'):
        v = 0.1 * (u() - 0.5)
    elif name.endswith('running_var'):
        v = 0.5 + u()
    elif name.endswith('.bias'):
        v = np.zeros(n)
    elif 'objectness_logits' in name or 'cls_score' in name or 'attr_score' in name:
        v = 3 * g() / math.sqrt(fan_in)
    elif 'anchor_deltas' in name or 'bbox_pred' in name:
        v = 0.2 * g() / math.sqrt(fan_in)
    elif 'cls_embedding' in name:
        v = g()
    elif name.startswith('backbone.stem'):
        v = g() * math.sqrt(2.0 / fan_in) / 64
    elif name.endswith('.weight'):
        v = g() * math.sqrt(2.0 / fan_in)
    else:
        sys.exit('no fill rule for %s' % name)
    return v.astype(np.float32).reshape(shape)


def checkpoint(keys, seed, container, attr, perm):
    rng = np.random.RandomState(seed)
    model = collections.OrderedDict() if container == 'ordered' else {}
    for name, shape in keys + (ATTR_KEYS if attr else []):
        if name == ANCHOR_BUFFER:
            a = caffe_anchors()
            if a.shape != shape:
                sys.exit('%s: keys say %s, the Caffe anchors are %s' % (name, shape, a.shape))
            model[name] = a[perm] if perm is not None else a
        else:
            model[name] = fill(name, shape, rng)
    return model


def caffe2_blobs(seed):
    rng = np.random.RandomState(seed)
    blobs = {'conv1_w': rng.standard_normal((64, 3, 7, 7)).astype(np.float32),
             'res_conv1_bn_s': np.ones(64, np.float32), 'res_conv1_bn_b': np.zeros(64, np.float32),
             'res2_0_branch2a_w': rng.standard_normal((64, 64, 1, 1)).astype(np.float32)}
    return {'blobs': blobs, 'cfg': 'MODEL:\n  TYPE: generalized_rcnn\n'}


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--keys', help='keys.tsv of the real checkpoint')
    p.add_argument('--out', required=True)
    p.add_argument('--protocol', type=int, choices=[2, 3, 4], default=3)
    p.add_argument('--container', choices=['dict', 'ordered'], default='dict')
    p.add_argument('--matching-heuristics', choices=['absent', 'true', 'false'], default='absent')
    p.add_argument('--attr', action='store_true', help='add the attribute head (faster_rcnn_from_caffe_attr.pkl)')
    p.add_argument('--permute-anchors', help='comma-separated new order of the 12 anchor rows')
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--caffe2-blobs', action='store_true', help='write a small Caffe2 {"blobs": ...} pickle instead')
    a = p.parse_args()
    if a.caffe2_blobs:
        obj = caffe2_blobs(a.seed)
    else:
        if not a.keys:
            p.error('--keys is required')
        perm = None
        if a.permute_anchors:
            perm = [int(x) for x in a.permute_anchors.split(',')]
            if sorted(perm) != list(range(12)):
                p.error('--permute-anchors must list 0..11 once each')
        obj = {'model': checkpoint(read_keys(a.keys), a.seed, a.container, a.attr, perm),
               '__author__': 'k3m-kit tools/checkpoint/make_bua_checkpoint.py (random values, real layout)'}
        if a.matching_heuristics != 'absent':
            obj['matching_heuristics'] = a.matching_heuristics == 'true'
    with open(a.out, 'wb') as f:
        pickle.dump(obj, f, protocol=a.protocol)


if __name__ == '__main__':
    main()
