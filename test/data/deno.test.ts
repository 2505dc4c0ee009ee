// The loader's worker threads under Deno (node:worker_threads): an epoch there gives the same batches,
// byte for byte, as under Node.
import t from 'tap';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { imageFolder } from '../../lib/data/folder.ts';
import { trainLoader } from '../../lib/data/loader.ts';
import { epochDigest } from './digest.ts';
import { writeImageFolder } from './images.ts';

const repo = fileURLToPath(new URL('../..', import.meta.url));
const deno = join(repo, 'node_modules', '.bin', 'deno');
const skip = !existsSync(deno) && 'deno is not installed (npm install)';

t.test('an epoch under Deno equals the same epoch under Node', { skip }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'deno-loader-test-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  await writeImageFolder(dir, 14);
  const spec = { module: new URL('./stand-in-transform.ts', import.meta.url).href, name: 'standIn', options: { sizes: [8, 4] } };
  const loader = trainLoader(imageFolder(dir), { batchSize: 4, numWorkers: 2, seed: 4, transform: spec });
  const node = await epochDigest(loader, 0);
  await loader.close();
  const r = spawnSync(deno, ['run', '-A', fileURLToPath(new URL('./deno-epoch.ts', import.meta.url)), dir, JSON.stringify(spec)], { cwd: repo, encoding: 'utf8', timeout: 60_000 });
  t.equal(r.status, 0, r.stderr);
  t.same(JSON.parse(r.stdout), node, `${node.length} batches: same indices, labels and crop bytes`);
});
