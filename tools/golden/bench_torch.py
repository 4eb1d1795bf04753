#!/usr/bin/python3
"""The PyTorch reference detector (make_region_golden.py) timed on the same resized images as
tools/bench/extract.ts; called by that benchmark, prints JSON.

    /usr/bin/python3 tools/golden/bench_torch.py CONFIG_JSON IMAGES_JSON THREADS

IMAGES_JSON lists {"path": raw RGB uint8 file, "h": .., "w": ..}; CONFIG_JSON is a preset
(packages/region-features/src/model/presets.ts) as JSON.
"""
import json
import os
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_region_golden import Net, random_weights, run  # noqa: E402


def main(cfg_json, images_json, threads):
    torch.set_num_threads(threads)
    cfg = json.loads(cfg_json)
    images = json.loads(open(images_json).read())
    net = Net(cfg, random_weights(cfg))
    rgbs = [np.fromfile(i['path'], dtype=np.uint8).reshape(i['h'], i['w'], 3) for i in images]
    with torch.no_grad():
        run(net, rgbs[0], rgbs[0].shape[0], rgbs[0].shape[1])  # warm-up
        t0 = time.perf_counter()
        for rgb in rgbs:
            run(net, rgb, rgb.shape[0], rgb.shape[1])
        dt = time.perf_counter() - t0
    print(json.dumps({'images': len(rgbs), 'seconds': dt, 'imagesPerSecond': len(rgbs) / dt, 'threads': threads, 'torch': torch.__version__}))


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
