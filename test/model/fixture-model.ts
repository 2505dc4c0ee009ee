// The small model of the committed model fixture (scripts/fixtures/model.py), built with our modules
// and loaded with PyTorch's weights.
import { DINOHead, MultiCropWrapper, VisionTransformer, type DropPathMasks, type Tensor } from '../../lib/index.ts';
import { fromFixture, type FixtureCase } from '../helpers/fixtures.ts';

// The fixture tensors whose names start with prefix, as state-dict entries without it.
export function stateFromFixture(c: FixtureCase, prefix: string): [string, Tensor][] {
  return Object.keys(c.tensors)
    .filter((k) => k.startsWith(prefix))
    .map((k) => [k.slice(prefix.length), fromFixture(c, k)]);
}

// dropPathRate: the fixture's unless given (0 for a teacher).
export function fixtureBackbone(c: FixtureCase, dropPathRate: number = c.attrs.drop_path_rate): VisionTransformer {
  const a = c.attrs;
  const vit = new VisionTransformer({
    imgSize: a.img_size,
    patchSize: a.patch_size,
    embedDim: a.embed_dim,
    depth: a.depth,
    numHeads: a.num_heads,
    mlpRatio: a.mlp_ratio,
    dropPathRate,
  });
  vit.loadStateDict(stateFromFixture(c, 'backbone.'));
  return vit;
}

export function fixtureModel(backbone: FixtureCase, variant: FixtureCase, dropPathRate?: number): MultiCropWrapper {
  const a = variant.attrs;
  const head = new DINOHead({
    inDim: backbone.attrs.embed_dim,
    outDim: a.out_dim,
    useBn: a.use_bn,
    normLastLayer: a.norm_last_layer,
    hiddenDim: a.hidden_dim,
    bottleneckDim: a.bottleneck_dim,
  });
  head.loadStateDict(stateFromFixture(variant, 'head.'));
  return new MultiCropWrapper(fixtureBackbone(backbone, dropPathRate), head);
}

// Replays the masks PyTorch drew (mask0, mask1, ... in the order drawn), checking that each request
// asks for as many samples as PyTorch drew; `left()` tells how many were not asked for.
export function replayMasks(c: FixtureCase): DropPathMasks & { left(): number } {
  const queue = Object.keys(c.tensors)
    .filter((k) => /^mask\d+$/.test(k))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
    .map((k) => c.tensors[k].data);
  const next = ({ batch, block, branch }: { batch: number; block: number; branch: string }) => {
    const m = queue.shift();
    if (m === undefined) throw new Error(`block ${block} (${branch}) asked for a mask after the recorded ones ran out`);
    if (m.length !== batch) throw new Error(`block ${block} (${branch}) asked for ${batch} values, PyTorch drew ${m.length}`);
    return m;
  };
  return Object.assign(next, { left: () => queue.length });
}
