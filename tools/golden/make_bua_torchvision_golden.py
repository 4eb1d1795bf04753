#!/usr/bin/python3
"""Golden fixture for region-features' box operations on the real checkpoint layout, from code the
team did not write: torchvision's `nms` and `roi_pool` (Debian python3-torchvision), and
detectron2's box decoding as documented (Box2BoxTransform.apply_deltas: weights, dw/dh clamped
at log(1000/16)), on the anchors of the checkpoint's own buffer.

Regenerate (from the repository root; needs python3-torch and python3-torchvision):

    /usr/bin/python3 tools/golden/make_bua_torchvision_golden.py [--keys .../bua-checkpoint/keys.tsv]

The weights are tools/checkpoint/make_bua_checkpoint.py's attribute variant with GENERATOR's
arguments (the test writes the same file, converts it with convert-weights and loads that).
One 96 x 128 image (a 6 x 8 res4 map: every anchor goes into NMS). Writes
tools/golden/region-features/bua-torchvision.safetensors:

  rgb                 the input, uint8 [96, 128, 3]
  res4                the backbone's map [6, 8, 1024] (NHWC), the input of every check below
  rpn_logits/deltas   the RPN head on res4, (y, x, anchor) order
  proposals           detectron2 decoding of rpn_deltas on the buffer's anchors, clipped, empty
                      boxes dropped, torchvision nms 0.7, at most 300
  pooled              torchvision roi_pool(res4, proposals, 14, 1/16) at POOL_CHANNELS, NHWC
  pooled_sum          the pooled map summed over all 1024 channels, [P, 14, 14]
  k3m_keep/boxes      K3M's selection (torchvision nms at 0.5 .. 0.9 until 36) on the class
                      boxes decoded with weights (10, 10, 5, 5), clipped
  adaptive_keep       the original generate_tsv.py rule (per-class torchvision nms 0.3)
  kept_features/probs/attr_probs   the first KEPT_ROWS selected boxes' features, class and
                      attribute probabilities (attributes: py-bottom-up-attention's head,
                      softmax over all 401 scores)

The backbone, res5 and the heads are the team's PyTorch rewrite (make_region_golden.Net); the
checks that matter here are on the operations named above.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torchvision.ops import nms, roi_pool

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, 'tools', 'checkpoint'))
from make_bua_checkpoint import ANCHOR_BUFFER, checkpoint, read_keys  # noqa: E402
from make_region_golden import (PIXEL_MEAN_BGR, Net, anchors, apply_deltas, clip, image,  # noqa: E402
                                select_adaptive, select_k3m, write_safetensors)

# bua-r101-c4 (packages/region-features/src/model/presets.ts); the TS test checks they agree.
CFG = dict(
    stemChannels=64, blocks=[3, 4, 23, 3], bottleneck=[64, 128, 256, 512], out=[256, 512, 1024, 2048],
    rpnChannels=512, numClasses=1601, numAttributes=401, anchorSizes=[64, 128, 256, 512],
    anchorRatios=[0.5, 1, 2], featureStride=16, preNmsTopK=6000, postNmsTopK=300, rpnNmsThresh=0.7,
    poolSize=14,
)
# make_bua_checkpoint.py arguments of the weights (the TS test passes the same).
GENERATOR = dict(seed=0, container='ordered', attr=True)
H, W = 96, 128
POOL_CHANNELS = [0, 341, 682, 1023]
KEPT_ROWS = 4
OUT = os.path.join(HERE, 'region-features', 'bua-torchvision.safetensors')


def default_keys():
    for d in (os.environ.get('K3M_SHARED'), os.path.join(REPO, '..', 'shared'), '/work/shared'):
        if d and os.path.exists(os.path.join(d, 'reference', 'bua-checkpoint', 'keys.tsv')):
            return os.path.join(d, 'reference', 'bua-checkpoint', 'keys.tsv')
    return None


def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--keys', default=default_keys())
    a = p.parse_args()
    if not a.keys:
        p.error('--keys: shared/reference/bua-checkpoint/keys.tsv not found')
    torch.set_num_threads(1)
    model = checkpoint(read_keys(a.keys), GENERATOR['seed'], GENERATOR['container'], GENERATOR['attr'], None)
    w = {k: torch.from_numpy(v) for k, v in model.items()}
    net = Net(CFG, w)
    rgb = image(0, H, W)
    with torch.no_grad():
        x = torch.from_numpy(rgb.astype(np.float32))[:, :, [2, 1, 0]] - torch.tensor(PIXEL_MEAN_BGR)
        res4 = net.backbone(x.permute(2, 0, 1).unsqueeze(0).contiguous())
        _, _, fh, fw = res4.shape
        rpn = 'proposal_generator.rpn_head'
        t = F.relu(F.conv2d(res4, w[rpn + '.conv.weight'], w[rpn + '.conv.bias'], padding=1))
        logits = F.conv2d(t, w[rpn + '.objectness_logits.weight'], w[rpn + '.objectness_logits.bias'])
        deltas = F.conv2d(t, w[rpn + '.anchor_deltas.weight'], w[rpn + '.anchor_deltas.bias'])
        a_ = logits.shape[1]
        logits = logits.permute(0, 2, 3, 1).reshape(-1)
        deltas = deltas.view(a_, 4, fh, fw).permute(2, 3, 0, 1).reshape(-1, 4)
        anc = anchors(fh, fw, CFG, w[ANCHOR_BUFFER])
        k = min(CFG['preNmsTopK'], logits.numel())
        top_scores, top_idx = logits.topk(k)
        props = clip(apply_deltas(deltas[top_idx], anc[top_idx], (1, 1, 1, 1)), H, W)
        ok = ((props[:, 2] - props[:, 0]) > 0) & ((props[:, 3] - props[:, 1]) > 0)
        props, top_scores = props[ok], top_scores[ok]
        proposals = props[nms(props, top_scores, CFG['rpnNmsThresh'])[: CFG['postNmsTopK']]]
        pooled = roi_pool(res4, [proposals], output_size=CFG['poolSize'], spatial_scale=1.0 / CFG['featureStride'])
        feats = net.stage(pooled, 5).mean(dim=(2, 3))
        bp = 'roi_heads.box_predictor'
        cls_logits = F.linear(feats, w[bp + '.cls_score.weight'], w[bp + '.cls_score.bias'])
        probs = F.softmax(cls_logits, dim=-1)
        bdel = F.linear(feats, w[bp + '.bbox_pred.weight'], w[bp + '.bbox_pred.bias'])
        pred = clip(apply_deltas(bdel, proposals, (10.0, 10.0, 5.0, 5.0)), H, W)
        k3m_keep, k3m_boxes = select_k3m(probs, pred)
        ad_keep = select_adaptive(probs, proposals)
        # py-bottom-up-attention FastRCNNOutputLayers(use_attr=True).forward.
        emb = w[bp + '.cls_embedding.weight'][cls_logits.argmax(-1)]
        hidden = F.relu(F.linear(torch.cat([feats, emb], -1), w[bp + '.fc_attr.weight'], w[bp + '.fc_attr.bias']))
        attr_probs = F.softmax(F.linear(hidden, w[bp + '.attr_score.weight'], w[bp + '.attr_score.bias']), dim=-1)
    rows = k3m_keep[:KEPT_ROWS]
    nhwc = lambda t: t.permute(0, 2, 3, 1).contiguous()
    tensors = {
        'rgb': rgb,
        'res4': nhwc(res4)[0].numpy(),
        'rpn_logits': logits.numpy(),
        'rpn_deltas': deltas.reshape(-1).numpy(),
        'proposals': proposals.numpy(),
        'pooled': nhwc(pooled[:, POOL_CHANNELS]).numpy(),
        'pooled_sum': pooled.sum(dim=1).numpy(),
        'k3m_keep': k3m_keep.numpy().astype(np.int64),
        'k3m_boxes': k3m_boxes.numpy(),
        'adaptive_keep': ad_keep.numpy().astype(np.int64),
        'kept_features': feats[rows].numpy(),
        'kept_probs': probs[rows].numpy(),
        'kept_attr_probs': attr_probs[rows].numpy(),
    }
    meta = {'config': json.dumps(CFG), 'generator': json.dumps(GENERATOR), 'poolChannels': json.dumps(POOL_CHANNELS),
            'torch': torch.__version__, 'torchvision': torchvision.__version__}
    write_safetensors(OUT, tensors, meta)
    print(json.dumps({'proposals': int(proposals.shape[0]), 'k3m': int(len(k3m_keep)), 'adaptive': int(len(ad_keep)),
                      'res4AbsMax': float(res4.abs().max()), 'bytes': os.path.getsize(OUT)}))


if __name__ == '__main__':
    main()
