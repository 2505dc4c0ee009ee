// `dino demo` (npm start) end to end, cut short: a few training iterations, the three k-NN reports,
// the attention pictures of one test image, and the summary naming where everything is. A second
// run resumes the training instead of refusing the directory.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runCli } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'demo-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the demo runs every stage and reports where the results are', async (t) => {
  const out = join(dir, 'demo');
  const r = await runCli(['demo', '--output-dir', out, '--max-iterations', '2', '--attention-images', '1', '--num-workers', '1']);
  t.equal(r.code, 0, r.err);
  for (const stage of ['dino train', 'dino eval-knn', 'dino attention']) t.match(r.out, new RegExp(`\\$ ${stage} `), `prints the ${stage} command it runs`);
  t.match(r.out, /iteration limit: stopped at iteration 2/);
  for (const f of ['checkpoint.safetensors', 'init.safetensors', 'log.jsonl', 'knn-trained.json', 'knn-random-init.json', 'knn-pixels.json']) t.ok(existsSync(join(out, f)), f);
  t.ok(existsSync(join(out, 'attention', 'test0000', 'attn-mean.png')), 'attention pictures of the first test image');
  const pixels = JSON.parse(readFileSync(join(out, 'knn-pixels.json'), 'utf8'));
  t.match(pixels.counts, { train_images: 5000, val_images: 1000, classes: 10 }, 'the whole bundled subset');
  t.match(r.out, /summary[\s\S]*trained teacher\s+\d+\.\d\s+\d+\.\d[\s\S]*random init\s+\d+\.\d[\s\S]*raw pixels\s+\d+\.\d/);
  const again = await runCli(['demo', '--output-dir', out, '--max-iterations', '1', '--attention-images', '0', '--num-workers', '1']);
  t.equal(again.code, 0, again.err);
  t.match(again.out, /resuming from .*checkpoint\.safetensors at epoch 0, iteration 2/);
});
