// `dino demo` (npm start) end to end, cut short: a few training iterations, the three k-NN reports,
// the attention pictures of one test image, and the summary naming where everything is. A second
// run resumes the training instead of refusing the directory.
import t from 'tap';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readTrainingLog } from '../../lib/train/log.ts';
import { runCli } from '../helpers/cli.ts';

const dir = mkdtempSync(join(tmpdir(), 'demo-test-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the demo runs every stage and reports where the results are', async (t) => {
  const out = join(dir, 'demo');
  const r = await runCli(['demo', '--output-dir', out, '--max-iterations', '2', '--attention-images', '1', '--num-workers', '1']);
  t.equal(r.code, 0, r.err);
  for (const stage of ['dino train', 'dino eval-knn', 'dino attention']) t.match(r.out, new RegExp(`\\$ ${stage} `), `prints the ${stage} command it runs`);
  // The training's own lines go straight to stdout; its log says what it did.
  const log = () => readTrainingLog(join(out, 'log.jsonl'));
  t.same(log().filter((x) => x.type === 'step').map((x) => x.iteration), [0, 1], 'two iterations trained');
  for (const f of ['checkpoint.safetensors', 'init.safetensors', 'log.jsonl', 'knn-trained.json', 'knn-random-init.json', 'knn-pixels.json']) t.ok(existsSync(join(out, f)), f);
  t.ok(existsSync(join(out, 'attention', 'test0000', 'attn-mean.png')), 'attention pictures of the first test image');
  const pixels = JSON.parse(readFileSync(join(out, 'knn-pixels.json'), 'utf8'));
  t.match(pixels.counts, { train_images: 5000, val_images: 1000, classes: 10 }, 'the whole bundled subset');
  t.match(r.out, /summary[\s\S]*trained teacher\s+\d+\.\d\s+\d+\.\d[\s\S]*random init\s+\d+\.\d[\s\S]*raw pixels\s+\d+\.\d/);
  const again = await runCli(['demo', '--output-dir', out, '--max-iterations', '1', '--attention-images', '0', '--num-workers', '1']);
  t.equal(again.code, 0, again.err);
  const starts = log().filter((x) => x.type === 'start');
  t.match(starts.at(-1), { iteration: 2, resumed_from: /checkpoint\.safetensors$/ }, 'the second run resumed the first');
  t.same(log().filter((x) => x.type === 'step').map((x) => x.iteration), [0, 1, 2]);
});
