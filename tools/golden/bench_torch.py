#!/usr/bin/python3
"""The PyTorch reference detector (make_region_golden.py) timed on the same resized images as
tools/bench/extract.ts; called by that benchmark, prints JSON.

    /usr/bin/python3 tools/golden/bench_torch.py CONFIG_JSON IMAGES_JSON THREADS [CHECKPOINT.pkl]

IMAGES_JSON lists {"path": raw RGB uint8 file, "h": .., "w": ..}; CONFIG_JSON is a preset
(packages/region-features/src/model/presets.ts) as JSON. With CHECKPOINT.pkl (a detectron2
pickle, e.g. tools/checkpoint/make_bua_checkpoint.py's real layout) the weights and the anchor
buffer come from it, loaded as detectron2 loads it; else seeded random weights.
"""
import json
import os
import pickle
import resource
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_region_golden import Net, random_weights, run  # noqa: E402

ANCHOR_BUFFER = 'proposal_generator.anchor_generator.cell_anchors.0'


def main(cfg_json, images_json, threads, pkl=None):
    torch.set_num_threads(threads)
    cfg = json.loads(cfg_json)
    images = json.loads(open(images_json).read())
    if pkl:
        with open(pkl, 'rb') as f:
            model = pickle.load(f, encoding='latin1')['model']
        weights = {k: torch.from_numpy(v) for k, v in model.items()}
    else:
        weights = random_weights(cfg)
    cell = weights.get(ANCHOR_BUFFER)
    net = Net(cfg, weights)
    rgbs = [np.fromfile(i['path'], dtype=np.uint8).reshape(i['h'], i['w'], 3) for i in images]
    with torch.no_grad():
        run(net, rgbs[0], rgbs[0].shape[0], rgbs[0].shape[1], cell)  # warm-up
        t0, c0 = time.perf_counter(), time.process_time()
        for rgb in rgbs:
            run(net, rgb, rgb.shape[0], rgb.shape[1], cell)
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    # ru_maxrss is in KiB on Linux: this process's peak, weights and activations included.
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({'images': len(rgbs), 'seconds': dt, 'imagesPerSecond': len(rgbs) / dt, 'cpuSecondsPerImage': cpu / len(rgbs),
                      'threads': threads, 'peakRssMB': peak_mb, 'torch': torch.__version__}))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4] if len(sys.argv) > 4 else None)
