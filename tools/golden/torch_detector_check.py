#!/usr/bin/python3
"""The PyTorch reference detector (make_region_golden.py) on one image for any preset, live: for
presets without a committed fixture (region-features' golden test runs it for small-c4-2048,
whose res5 runs at stride 2).

    /usr/bin/python3 tools/golden/torch_detector_check.py CONFIG_JSON OUT_DIR

CONFIG_JSON is a preset (packages/region-features/src/model/presets.ts) as JSON. Writes
OUT_DIR/weights.pkl (seeded random weights, detectron2-style pickle) and OUT_DIR/golden.safetensors
(the resized RGB input and res4, proposals, features, probs, k3m_keep, k3m_boxes).
"""
import collections
import json
import os
import pickle
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_region_golden import Net, image, random_weights, resize, resized_size, run, write_safetensors  # noqa: E402


def main(cfg_json, out):
    torch.manual_seed(0)
    torch.set_num_threads(1)
    cfg = json.loads(cfg_json)
    os.makedirs(out, exist_ok=True)
    w = random_weights(cfg)
    with open(os.path.join(out, 'weights.pkl'), 'wb') as f:
        pickle.dump({'model': collections.OrderedDict((k, v.numpy()) for k, v in w.items())}, f, protocol=4)
    rh, rw = 100, 150
    nh, nw = resized_size(rh, rw)
    rgb = resize(image(0, rh, rw), nh, nw)
    with torch.no_grad():
        res = run(Net(cfg, w), rgb, rh, rw)
    tensors = {'rgb': rgb}
    for k in ('res4', 'proposals', 'features', 'probs', 'k3m_keep', 'k3m_boxes'):
        tensors[k] = res[k].numpy().astype(np.int64 if 'keep' in k else np.float32)
    write_safetensors(os.path.join(out, 'golden.safetensors'), tensors, {'config': cfg_json, 'rawH': str(rh), 'rawW': str(rw)})


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2])
