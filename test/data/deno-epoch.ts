// Run by test/data/deno.test.ts under Deno (deno run -A test/data/deno-epoch.ts ROOT SPEC): one training
// epoch of an ImageFolder through the worker pool, printed as a digest of every batch.
import process from 'node:process';
import { imageFolder } from '../../lib/data/folder.ts';
import { trainLoader } from '../../lib/data/loader.ts';
import { epochDigest } from './digest.ts';

const [root, spec] = process.argv.slice(2);
const loader = trainLoader(imageFolder(root), { batchSize: 4, numWorkers: 2, seed: 4, transform: JSON.parse(spec) });
try {
  console.log(JSON.stringify(await epochDigest(loader, 0)));
} finally {
  await loader.close();
}
